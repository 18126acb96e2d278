"""One transaction per use case on the primary: ``async with UnitOfWork(engine) as uow`` … ``await uow.commit()``.

Why a unit of work that rolls back on exit: only an explicit ``commit()`` persists anything, so an exception, an
early return or a forgotten commit can never leave half a change behind ("no partial write"). Later, outbox rows
join the same transaction. See notes/postgres.md, "Contention".
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

QUIET = {"synchronize_session": False}  # bulk UPDATE/DELETE statements: nothing in the session to keep in step


class UnitOfWork:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("use the unit of work inside `async with`")
        return self._session

    async def __aenter__(self) -> UnitOfWork:
        self._session = self._sessions()
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
