"""The relay's statements on the outbox table: which partitions wait, one partition's next batch under its
advisory lock, marking what the broker confirmed or returned, the backlog, and pruning.

Why a transaction-scoped advisory lock per partition (``pg_try_advisory_xact_lock``): several relays run (one per
app worker, on every instance) and must neither publish a row twice nor reorder an aggregate. Every row of an
aggregate lives in one partition (app/messaging/outbox.py), and a relay publishes a partition only while it holds
that partition's lock, from the lock to the commit that marks the batch; another relay skips a locked partition
instead of waiting, so relays spread over partitions. The lock is released with the commit, after the marks are
visible, so the next holder starts where the last one ended. Why not ``FOR UPDATE SKIP LOCKED`` on rows: two
relays would take two rows of one aggregate and race them to the broker; the per-aggregate rule that fixes that
(take a row only if no earlier row of its aggregate is unpublished) costs an anti-join per row, where a partition
lock costs one call. Transaction-scoped, so it works through PgBouncer in transaction mode and can never outlive
its holder's connection. See notes/rabbitmq.md, "The outbox and its relay".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Uuid, cast, delete, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import OutboxMessage
from app.messaging.envelope import Envelope

LOCK_SPACE = 0x0B0C  # the first key of the relay's advisory locks (the second is the partition)


@dataclass(frozen=True)
class Backlog:
    partitions: tuple[int, ...]  # partitions with unpublished rows, most urgent first
    messages: int
    oldest_age_s: float


async def backlog(session: AsyncSession) -> Backlog:
    """Which partitions have unpublished rows, how many rows, and how old the oldest is (one index scan)."""
    unpublished = OutboxMessage.published_at.is_(None)
    rows = (
        await session.execute(
            select(
                OutboxMessage.partition,
                func.count(),
                func.extract("epoch", func.now() - func.min(OutboxMessage.occurred_at)),
            )
            .where(unpublished)
            .group_by(OutboxMessage.partition)
        )
    ).all()
    ordered = sorted(rows, key=lambda row: -float(row[2]))
    return Backlog(
        partitions=tuple(int(row[0]) for row in ordered),
        messages=sum(int(row[1]) for row in rows),
        oldest_age_s=max((float(row[2]) for row in rows), default=0.0),
    )


async def lock_partition(session: AsyncSession, partition: int) -> bool:
    """Take the partition's lock until this transaction ends; False at once if another relay holds it."""
    taken = await session.scalar(select(func.pg_try_advisory_xact_lock(LOCK_SPACE, partition)))
    return bool(taken)


async def next_batch(session: AsyncSession, partition: int, limit: int) -> list[Envelope]:
    """The partition's oldest unpublished rows, in id order (served by the partial index ix_outbox_unpublished)."""
    rows = await session.execute(  # columns, not entities: a batch is read once and never changed through the ORM
        select(
            OutboxMessage.message_id,
            OutboxMessage.type,
            OutboxMessage.version,
            OutboxMessage.occurred_at,
            OutboxMessage.aggregate_type,
            OutboxMessage.aggregate_id,
            OutboxMessage.request_id,
            OutboxMessage.traceparent,
            OutboxMessage.payload,
        )
        .where(OutboxMessage.partition == partition, OutboxMessage.published_at.is_(None))
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    return [
        Envelope(
            id=row.message_id,
            type=row.type,
            version=row.version,
            occurred_at=row.occurred_at,
            aggregate_type=row.aggregate_type,
            aggregate_id=row.aggregate_id,
            request_id=row.request_id,
            traceparent=row.traceparent,
            payload=row.payload,
        )
        for row in rows
    ]


def _ids(message_ids: Sequence[uuid.UUID]) -> object:
    return cast(list(message_ids), ARRAY(Uuid))


async def mark_published(session: AsyncSession, message_ids: Sequence[uuid.UUID]) -> None:
    if message_ids:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.message_id == func.any(_ids(message_ids)))
            .values(published_at=func.now())
            .execution_options(synchronize_session=False)
        )


async def mark_returned(session: AsyncSession, message_ids: Sequence[uuid.UUID]) -> None:
    """The broker returned these (unroutable): kept unpublished, with when and how often."""
    if message_ids:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.message_id == func.any(_ids(message_ids)))
            .values(returned_at=func.now(), attempts=OutboxMessage.attempts + 1)
            .execution_options(synchronize_session=False)
        )


async def prune(session: AsyncSession, *, older_than_s: float, limit: int) -> int:
    """Delete up to ``limit`` rows published more than ``older_than_s`` ago, oldest first; how many went."""
    due = (
        select(OutboxMessage.id)
        .where(OutboxMessage.published_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_s))
        .order_by(OutboxMessage.published_at)
        .limit(limit)
    )
    deleted = await session.execute(
        delete(OutboxMessage)
        .where(OutboxMessage.id.in_(due))
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    )
    return len(deleted.all())
