"""``HoldSweeper``: gives the seats of expired active holds back, in batches, however many sweepers run.

Why ``FOR UPDATE SKIP LOCKED``: every app worker runs a sweeper, so two or more scan the same expired holds at
once. Each batch locks the holds it will expire and skips rows another sweeper has already locked, so sweepers
split the work instead of queueing behind each other or expiring one hold twice. A hold a sweeper skipped is
either being expired by another sweeper or being changed by its owner (release, booking); when that transaction
commits the hold is no longer ``active`` and no sweeper selects it again. Only ``active`` holds are swept:
``paying`` means a charge is in flight and its seats must stay held (``SWEEPABLE``; the moves are built by
app/db/status_moves.py). Each batch is one of the app's units of work, bounded by the same timeouts as a request's,
and appends one ``hold.expired`` message per hold it expired, in one statement of the same transaction
(notes/rabbitmq.md, "The outbox and its relay"); the schedule is the app's one periodic-job runner
(app/background.py). See notes/postgres.md, "Contention".
"""

from __future__ import annotations

import structlog
from sqlalchemy import ARRAY, Uuid, cast, func, literal_column, select

from app.db.models import Hold
from app.db.status_moves import move_holds
from app.domain.holds import SWEEPABLE, HoldStatus
from app.messaging.envelope import HoldEndedV1
from app.services.holds import free_seats
from app.services.unit_of_work import UnitOfWorkFactory

log = structlog.get_logger(__name__)


class HoldSweeper:
    def __init__(self, uows: UnitOfWorkFactory, *, batch: int) -> None:
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self._uows = uows
        self._batch = batch

    async def sweep_once(self) -> int:
        """Expire every hold due now, one batch per transaction; how many holds this sweeper released."""
        released = 0
        while True:
            swept = await self._sweep_batch()
            released += swept
            if swept < self._batch:
                if released:
                    log.info("holds_expired", released=released)
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
            .subquery()
        )
        # The batch as one array computed first (an InitPlan), then fetched by primary key: with ``id IN (…)`` the
        # planner may instead scan every active hold through the partial index to meet the move's own
        # ``status = 'active'`` (tests/integration/test_query_plans.py).
        batch = cast(select(func.array_agg(due.c.id)).scalar_subquery(), ARRAY(Uuid))
        expire = (
            move_holds(HoldStatus.EXPIRED, SWEEPABLE)
            .where(Hold.id == func.any(batch))
            .returning(Hold.id, Hold.event_id, Hold.user_id)
        )
        async with self._uows() as uow:
            expired = (await uow.session.execute(expire)).all()
            if expired:
                await free_seats(uow.session, [hold.id for hold in expired])
                ended = [HoldEndedV1(hold_id=h.id, event_id=h.event_id, user_id=h.user_id) for h in expired]
                await uow.outbox.add("hold.expired", *ended)
            await uow.commit()
        return len(expired)
