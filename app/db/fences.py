"""Fencing tokens checked by PostgreSQL: a leased job's write transaction passes its lease's fence first, or rolls
back.

Why the check lives in the database and not in the job: a holder of a Redis lease cannot know it still holds it. A
process paused past its lease (a stop signal, a long GC pause, a VM migrated) wakes up believing it does, while a
newer holder has taken over. The lease's token (an INCR that grows with every grant, app/cache/lease.py) goes with
every write, and the first statement of each write transaction moves the lease's ``lease_fence`` row to that token
only if the row's token is not newer: an older token finds no row to move and the transaction is refused
(``FencedOutError``). The row stays locked until the transaction ends, so the check and the writes it guards are
one atomic step, and a stale holder blocked behind a newer holder's transaction re-reads the row and is refused.
See notes/redis.md, "A lease with fencing tokens".
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LeaseFence


@dataclass(frozen=True)
class Fence:
    """The lease ``name`` and the fencing token its holder was granted."""

    name: str
    token: int


class FencedOutError(Exception):
    """A newer holder of the lease has written: this holder's write transaction was refused."""

    def __init__(self, fence: Fence) -> None:
        super().__init__(f"lease {fence.name!r}: token {fence.token} is older than the newest PostgreSQL has seen")
        self.fence = fence


async def pass_fence(session: AsyncSession, fence: Fence) -> None:
    """The first statement of a fenced transaction: raise ``FencedOutError`` if a newer token has been seen."""
    upsert = insert(LeaseFence).values(name=fence.name, token=fence.token)
    passed = await session.scalar(
        upsert.on_conflict_do_update(
            index_elements=[LeaseFence.name],
            set_={"token": upsert.excluded.token, "updated_at": func.now()},
            where=LeaseFence.token <= upsert.excluded.token,
        ).returning(LeaseFence.token)
    )
    if passed is None:
        raise FencedOutError(fence)


async def newest_token(session: AsyncSession, name: str) -> int:
    """The newest token seen for lease ``name`` (0 before its first write): the floor of the next grant."""
    return await session.scalar(select(LeaseFence.token).where(LeaseFence.name == name)) or 0
