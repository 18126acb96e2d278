"""One transaction per use case on the primary: ``async with UnitOfWork(engine) as uow`` … ``await uow.commit()``.

Why a unit of work that rolls back on exit: only an explicit ``commit()`` persists anything, so an exception, an
early return or a forgotten commit can never leave half a change behind ("no partial write"). Later, outbox rows
join the same transaction.

Why ``TransactionTimeouts``: the server-side bounds of each transaction, set with ``set_config(..., true)`` (that
is ``SET LOCAL``) as its first statement, so they end with the transaction and never leak to the next borrower of
the pooled connection. A writer queued behind a row lock gives up after ``lock_timeout`` (SQLSTATE 55P03) and any
statement after ``statement_timeout`` (57014), both well inside the client's ``command_timeout`` and the edge's
5 s, so the caller gets a clear problem instead of a hang. See notes/postgres.md, "Contention" and "Plans,
indexes and timeouts".
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.settings import Settings

QUIET = {"synchronize_session": False}  # bulk UPDATE/DELETE statements: nothing in the session to keep in step


_SET_LOCAL_TIMEOUTS = text(
    "SELECT set_config('lock_timeout', :lock_ms, true), set_config('statement_timeout', :statement_ms, true)"
)


@dataclass(frozen=True)
class TransactionTimeouts:
    """``lock_timeout`` and ``statement_timeout`` for one transaction, in milliseconds (0 would mean none)."""

    lock_ms: int
    statement_ms: int

    @classmethod
    def of(cls, settings: Settings) -> TransactionTimeouts:
        return cls(lock_ms=settings.db_lock_timeout_ms, statement_ms=settings.db_statement_timeout_ms)


class UnitOfWork:
    def __init__(self, engine: AsyncEngine, timeouts: TransactionTimeouts | None = None) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._timeouts = timeouts
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("use the unit of work inside `async with`")
        return self._session

    async def __aenter__(self) -> UnitOfWork:
        self._session = self._sessions()
        if self._timeouts is not None:  # one round trip; it also begins the transaction the bounds belong to
            bounds = {"lock_ms": str(self._timeouts.lock_ms), "statement_ms": str(self._timeouts.statement_ms)}
            try:
                await self._session.execute(_SET_LOCAL_TIMEOUTS, bounds)
            except BaseException:
                await self.__aexit__(None, None, None)
                raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        session, self._session = self.session, None
        try:
            await session.rollback()
        finally:
            await session.close()

    async def commit(self) -> None:
        await self.session.commit()
