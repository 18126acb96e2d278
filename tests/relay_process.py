"""One outbox relay in a process of its own that stops itself between the broker's confirm and its mark:
``python -m tests.relay_process '<json>'`` with ``database_url`` and ``amqp_url``, the rest of its settings from the
app's ``REFSTACK_*`` environment (the topology it declares must be the app's).

Why a process: the fault is a relay killed after the broker confirmed a batch and before its transaction marked the
rows published, and only a process can be killed there. The real ``ConfirmedPublisher`` publishes; once a batch
comes back with confirmed messages, this process prints ``PUBLISHED <message ids>`` and sends itself SIGSTOP, still
inside the transaction that holds the partition's lock, so the test knows exactly where it is when it SIGKILLs it.
See notes/rabbitmq.md, "The outbox and its relay".
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import create_async_engine

from app.messaging.amqp_connection import AmqpConnection
from app.messaging.confirmed_publisher import ConfirmedPublisher, Sent
from app.messaging.envelope import Envelope
from app.messaging.outbox_relay import OutboxRelay, RelayBounds
from app.observability.metrics import build_outbox_metrics
from app.services.unit_of_work import UnitOfWorkFactory
from app.settings import Settings


class StopsAfterConfirm:
    """The real publisher; after the first batch with a confirmed message this process stops itself."""

    def __init__(self, publisher: ConfirmedPublisher) -> None:
        self._publisher = publisher

    async def publish(self, aggregates: Sequence[Sequence[Envelope]]) -> Sent:
        sent = await self._publisher.publish(aggregates)
        if sent.confirmed:
            print("PUBLISHED " + " ".join(str(message_id) for message_id in sent.confirmed), flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)
        return sent


async def main(arguments: dict[str, str]) -> None:
    settings = Settings(amqp_url=arguments["amqp_url"])
    engine = create_async_engine(arguments["database_url"], pool_size=2, max_overflow=0)
    amqp = AmqpConnection(settings)
    amqp.start()
    await asyncio.wait_for(amqp.connection_when_up(), timeout=60)
    publisher = StopsAfterConfirm(ConfirmedPublisher(amqp, settings))
    bounds = RelayBounds(batch=100, retry_attempts=1, backoff_base_s=0.05, backoff_max_s=0.1)
    relay = OutboxRelay(UnitOfWorkFactory(engine, None), publisher, bounds, build_outbox_metrics(CollectorRegistry()))
    print("READY", flush=True)
    while True:  # until the test kills it
        await relay.drain()
        await asyncio.sleep(0.05)  # sleep-ok: this relay's poll interval


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
