"""The inbox's old rows, pruned: what each consumer applied is kept ``inbox_retention_s``, then deleted in batches.

Why a retention and not "forever": the inbox grows by one row per message and consumer, and a row only matters
while a copy of its message can still arrive. Copies come from a redelivery (within the retry tiers and the delivery
limit: minutes) or from a relay that died between the broker's confirm and marking its row (the copy leaves at
that relay's next drain, or another relay's). A week covers both with a wide margin; a copy arriving later than
that after the first was applied would be applied again, which is the trade-off stated in notes/rabbitmq.md,
"Pruning the inbox". Oldest first, by the ``applied_at`` index (migration 0010), through the one batch loop
(app/db/pruning.py) run by the one periodic-job runner.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import InboxEntry
from app.db.pruning import prune_in_batches
from app.db.transaction import UnitOfWorkOpener


async def prune_inbox_batch(session: AsyncSession, *, older_than_s: float, limit: int) -> int:
    """Delete up to ``limit`` inbox rows applied more than ``older_than_s`` ago, oldest first; how many went."""
    due = (
        select(InboxEntry.consumer, InboxEntry.message_id)
        .where(InboxEntry.applied_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_s))
        .order_by(InboxEntry.applied_at)
        .limit(limit)
    )
    deleted = await session.execute(
        delete(InboxEntry)
        .where(tuple_(InboxEntry.consumer, InboxEntry.message_id).in_(due))
        .returning(InboxEntry.message_id)
        .execution_options(synchronize_session=False)
    )
    return len(deleted.all())


async def prune_inbox(uows: UnitOfWorkOpener, *, older_than_s: float, batch: int) -> int:
    """Every inbox row older than the retention, ``batch`` per transaction; how many went."""

    async def one_batch(session: AsyncSession, limit: int) -> int:
        return await prune_inbox_batch(session, older_than_s=older_than_s, limit=limit)

    return await prune_in_batches(uows, one_batch, batch=batch)
