"""Deleting rows that are due in bounded batches, one short transaction each, until fewer than a batch were due.

Why batches: a single ``DELETE`` of a large backlog holds its row locks and writes its WAL for as long as it runs,
and a job stopped half way has done nothing; batches keep every transaction short and the work done so far kept.
Why the caller gives the batch statement: what is due (published outbox rows, old inbox rows) is each table's own
rule, with its own index; the loop is the same for both. See notes/rabbitmq.md, "The outbox and its relay"
(Pruning) and "Pruning the inbox".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.transaction import UnitOfWorkOpener

PruneBatch = Callable[[AsyncSession, int], Awaitable[int]]
"""Deletes up to the given number of due rows in the session's transaction; returns how many it deleted."""


async def prune_in_batches(uows: UnitOfWorkOpener, prune_batch: PruneBatch, *, batch: int) -> int:
    """Run ``prune_batch`` in its own transaction until it deletes fewer than ``batch`` rows; how many went."""
    pruned = 0
    while True:
        async with uows() as uow:
            deleted = await prune_batch(uow.session, batch)
            await uow.commit()
        pruned += deleted
        if deleted < batch:
            return pruned
