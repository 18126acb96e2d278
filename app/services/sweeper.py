"""``HoldSweeper``: gives the seats of expired active holds back, in batches, however many sweepers run.

Why ``FOR UPDATE SKIP LOCKED``: every app worker runs a sweeper, so two or more scan the same expired holds at
once. Each batch locks the holds it will expire and skips rows another sweeper has already locked, so sweepers
split the work instead of queueing behind each other or expiring one hold twice. A hold a sweeper skipped is
either being expired by another sweeper or being changed by its owner (release, booking); when that transaction
commits the hold is no longer ``active`` and no sweeper selects it again. Only ``active`` holds are swept:
``paying`` means a charge is in flight and its seats must stay held. See notes/postgres.md, "Contention".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from sqlalchemy import func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.background import running_in_background
from app.db.models import Hold
from app.domain.holds import HoldStatus
from app.services.holds import free_seats
from app.services.unit_of_work import QUIET, UnitOfWork

log = structlog.get_logger(__name__)


class HoldSweeper:
    def __init__(self, engine: AsyncEngine, *, batch: int) -> None:
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self._engine = engine
        self._batch = batch

    async def sweep_once(self) -> int:
        """Expire every hold due now, one batch per transaction; how many holds this sweeper released."""
        released = 0
        while True:
            swept = await self._sweep_batch()
            released += swept
            if swept < self._batch:
                return released

    async def _sweep_batch(self) -> int:
        due = (
            select(Hold.id)
            # A literal, not a bound parameter: once asyncpg's prepared statement goes generic, the planner could
            # no longer prove `status = 'active'` and would skip the partial index ix_hold_active_expires_at.
            .where(Hold.status == literal_column(f"'{HoldStatus.ACTIVE.value}'"), Hold.expires_at <= func.now())
            .order_by(Hold.expires_at)
            .limit(self._batch)
            .with_for_update(skip_locked=True)
        )
        expire = (
            update(Hold)
            .where(Hold.id.in_(due))
            .values(status=HoldStatus.EXPIRED)
            .returning(Hold.id)
            .execution_options(**QUIET)
        )
        async with UnitOfWork(self._engine) as uow:
            expired = list(await uow.session.scalars(expire))
            if expired:
                await free_seats(uow.session, expired)
            await uow.commit()
        return len(expired)

    async def run(self, interval_s: float) -> None:
        """Sweep every ``interval_s`` until cancelled; a failed sweep is logged and the next one still runs.

        The first sweep comes one interval after start, so a worker that is still starting puts no load on the
        database, and nothing holds a pooled connection during the app's own start-up checks.
        """
        while True:
            await asyncio.sleep(interval_s)  # sleep-ok: the sweep schedule, not a synchronisation
            try:
                released = await self.sweep_once()
            except Exception:  # the loop must outlive a database outage; the log says what failed
                log.exception("hold_sweep_failed")
            else:
                if released:
                    log.info("holds_expired", released=released)

    @asynccontextmanager
    async def running(self, interval_s: float) -> AsyncIterator[asyncio.Task[None]]:
        """Run the sweep loop as a background task for the duration of the ``async with``; cancel it on exit."""
        async with running_in_background(self.run(interval_s), "hold-sweeper") as task:
            yield task
