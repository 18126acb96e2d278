"""``python -m app.worker.replay <consumer> [--limit N]``: send a consumer's parked messages back to its queue.

Why a tool: the parking lot is where a message goes when its consumer failed it on every tier (a bug, a missing row,
a receiver that was down for longer than the tiers). Once the cause is fixed, the operator sends the messages back,
and the consumer applies each exactly once: the inbox still guards the effect, so a message that was in fact
applied before it parked is only acknowledged.

Why it is safe to run at any time: each parked message is republished to the consumer's own queue (through the
direct exchange ``refstack.consumers``, so no other consumer sees it again) with publisher confirms and
``mandatory``, and it leaves the parking lot only once the broker has confirmed the copy; a copy that was not
confirmed leaves the original where it was, and the tool stops. The failure count is dropped from the copy, so the
message gets every retry tier again. At most ``--limit`` messages are moved, oldest first, so a replay of a huge
parking lot can go in steps. See notes/rabbitmq.md, "Retries, parking and poison messages".
"""

from __future__ import annotations

import argparse
import asyncio

import aio_pika
from aio_pika.abc import AbstractChannel

from app.messaging.topology import BINDINGS, CONSUMERS_EXCHANGE, parking_queue
from app.settings import Settings
from app.worker.delivery import ERROR_HEADER, FAILURES_HEADER, copy_of

DEFAULT_LIMIT = 10_000


async def replay_parked(channel: AbstractChannel, consumer: str, *, limit: int) -> int:
    """Move up to ``limit`` messages from ``consumer``'s parking lot back to its queue; how many were moved. The
    channel must have publisher confirms on."""
    parking = await channel.get_queue(parking_queue(consumer), ensure=True)
    back = await channel.get_exchange(CONSUMERS_EXCHANGE, ensure=True)
    moved = 0
    while moved < limit and (parked := await parking.get(fail=False)) is not None:
        headers = {k: v for k, v in (parked.headers or {}).items() if k not in (FAILURES_HEADER, ERROR_HEADER)}
        try:
            await back.publish(copy_of(parked, headers), routing_key=consumer, mandatory=True)
        except BaseException:
            await parked.nack(requeue=True)
            raise
        await parked.ack()
        moved += 1
    return moved


async def replay(settings: Settings, consumer: str, limit: int) -> int:
    connection = await aio_pika.connect(str(settings.amqp_url), timeout=settings.amqp_timeout_s)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return await replay_parked(channel, consumer, limit=limit)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m app.worker.replay", description=__doc__.splitlines()[0])
    parser.add_argument("consumer", choices=sorted(BINDINGS), help="whose parking lot to send back")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="move at most this many (oldest first)")
    arguments = parser.parse_args()
    moved = asyncio.run(replay(Settings(), arguments.consumer, arguments.limit))
    print(f"replayed {moved} message(s) from {parking_queue(arguments.consumer)} to {arguments.consumer}")


if __name__ == "__main__":
    main()
