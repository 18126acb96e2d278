"""Several relays racing over one outbox keep each aggregate's order and publish each row once.

Two relays of this process (each with its own connection to the broker and its own transactions) and the app's own
relays (one per uvicorn worker, woken by the same NOTIFY) drain 40 aggregates × 25 messages written in 25 rounds,
one row per aggregate per round, so every partition interleaves many aggregates. A private queue bound to ``#``
reads what reached the broker: each aggregate's messages arrive in outbox id order, and each message exactly once
(the partition lock means no two relays ever hold the same row). See notes/rabbitmq.md, "The outbox and its relay".
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.messaging.amqp_connection import AmqpConnection
from app.messaging.confirmed_publisher import ConfirmedPublisher
from app.messaging.envelope import HoldEndedV1
from app.messaging.outbox_relay import OutboxRelay, RelayBounds
from app.observability.metrics import build_outbox_metrics
from app.services.unit_of_work import UnitOfWorkFactory
from app.settings import Settings
from stack.native.stack import NativeStack
from tests.outbox_tap import tapping
from tests.polling import wait_for_async

AGGREGATES = 40
ROUNDS = 25


@pytest.fixture
async def relays(
    stack: NativeStack, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[list[OutboxRelay]]:
    for name, value in stack.app_environment().items():  # the app's settings: the topology they declare must match
        monkeypatch.setenv(name, value)
    settings = Settings(amqp_url=stack.rabbitmq.direct_url)
    made: list[OutboxRelay] = []
    connections: list[AmqpConnection] = []
    publishers: list[ConfirmedPublisher] = []
    for _ in range(2):
        amqp = AmqpConnection(settings)
        amqp.start()
        connections.append(amqp)
        publisher = ConfirmedPublisher(amqp, settings)
        publishers.append(publisher)
        bounds = RelayBounds(batch=17, retry_attempts=5, backoff_base_s=0.05, backoff_max_s=0.5)
        metrics = build_outbox_metrics(CollectorRegistry())
        made.append(OutboxRelay(UnitOfWorkFactory(engine, None), publisher, bounds, metrics))

    async def connected() -> bool:
        return all(amqp.connected for amqp in connections)

    await wait_for_async(connected, timeout_s=30, what="both relays connected to the broker")
    try:
        yield made
    finally:
        for publisher in publishers:
            await publisher.aclose()
        for amqp in connections:
            await amqp.aclose()


async def test_racing_relays_keep_each_aggregates_order_and_publish_each_row_once(
    stack: NativeStack, engine: AsyncEngine, relays: list[OutboxRelay]
) -> None:
    uows = UnitOfWorkFactory(engine, None)
    holds = [uuid.uuid4() for _ in range(AGGREGATES)]
    event_id, user_id = uuid.uuid4(), uuid.uuid4()
    async with tapping(stack) as tap:

        async def write_rounds() -> None:
            for _ in range(ROUNDS):
                async with uows() as uow:
                    for hold in holds:
                        await uow.outbox.add(
                            "hold.released", HoldEndedV1(hold_id=hold, event_id=event_id, user_id=user_id)
                        )
                    await uow.commit()

        async def keep_draining(relay: OutboxRelay) -> None:
            while True:
                await relay.drain()
                await asyncio.sleep(0.01)  # sleep-ok: paces an idle relay like a poll, not a synchronisation

        drainers = [asyncio.create_task(keep_draining(relay)) for relay in relays]
        try:
            await write_rounds()

            async def everything_arrived() -> bool:
                return sum(len(tap.of(str(hold))) for hold in holds) >= AGGREGATES * ROUNDS

            await wait_for_async(everything_arrived, timeout_s=60, what="every message on the tap")
        finally:
            for task in drainers:
                task.cancel()
            await asyncio.gather(*drainers, return_exceptions=True)

    ids = ",".join(f"'{hold}'" for hold in holds)
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                text(f"SELECT aggregate_id, message_id FROM outbox WHERE aggregate_id IN ({ids}) ORDER BY id")
            )
        ).all()
    in_outbox: dict[str, list[str]] = {}
    for aggregate_id, message_id in rows:
        in_outbox.setdefault(str(aggregate_id), []).append(str(message_id))
    for hold in holds:
        consumed = [str(envelope.id) for envelope in tap.of(str(hold))]
        assert consumed == in_outbox[str(hold)], f"aggregate {hold}: order or count differs from the outbox"
