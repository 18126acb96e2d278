"""One transaction per unit of work: ``async with uows() as uow`` … ``await uow.commit()``.

Why a unit of work that rolls back on exit: only an explicit ``commit()`` persists anything, so an exception, an
early return or a forgotten commit can never leave half a change behind ("no partial write"). The messages a change
owes the broker join the same transaction through ``uow.outbox`` (app/messaging/outbox.py): they commit or roll
back with the change (notes/rabbitmq.md, "The outbox and its relay").

Why one factory, built once per engine by the lifespan: every transaction in the process — a request's, the
sweeper's, the reconciler's, the seed's — is opened the same way, with the same server-side bounds and the one
sessionmaker of its engine. A unit of work is one transaction and is used once: entering it again (a nested
``async with`` on the same object, or a second step of a use case reusing the first's) raises instead of silently
replacing its session; a second transaction is a second ``uows()``.

Why ``TransactionTimeouts``: the server-side bounds of each transaction, set with ``set_config(..., true)`` (that
is ``SET LOCAL``) as its first statement, so they end with the transaction and never leak to the next borrower of
the pooled connection. A writer queued behind a row lock gives up after ``lock_timeout`` (SQLSTATE 55P03) and any
statement after ``statement_timeout`` (57014), both well inside the client's ``command_timeout`` and the edge's
5 s, so the caller gets a clear problem instead of a hang — and a background job gets the same error instead of
pinning a connection. When the engine's connections already carry those bounds from their startup packet
(app/db/engines.py: every engine but a transaction pooler's), the factory is built without them and no statement
is spent on them.

Why ``read()`` beside the unit of work, from the same factory: a read of one row or one page is one statement,
and wrapping it in ``BEGIN`` … ``ROLLBACK`` costs three round trips for one. ``read()`` gives a session on an
autocommit connection: the statement is its own transaction, bounded by the connection's timeouts, and the read is
one round trip. It refuses to flush, so it cannot write. Where the bounds can only be set per transaction (behind
the pooler) ``read()`` is an ordinary unit of work that rolls back. A read of several statements that must agree
with each other is a unit of work, not ``read()``. See notes/postgres.md, "One read, one round trip".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.messaging.outbox import Outbox
from app.settings import Settings

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


class _Phase(Enum):
    NEW = "new"
    OPEN = "open"
    DONE = "done"


class UnitOfWork:
    """One transaction; made by ``UnitOfWorkFactory``, entered exactly once."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], timeouts: TransactionTimeouts | None) -> None:
        self._sessions = sessions
        self._timeouts = timeouts
        self._session: AsyncSession | None = None
        self._phase = _Phase.NEW

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("use the unit of work inside `async with`")
        return self._session

    @property
    def outbox(self) -> Outbox:
        """Messages this transaction owes the broker: written with it, published by the relay after it commits."""
        return Outbox(self.session)

    async def __aenter__(self) -> UnitOfWork:
        if self._phase is not _Phase.NEW:
            raise RuntimeError("a unit of work is one transaction: open the next one with `uows()`")
        self._phase = _Phase.OPEN
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
        session, self._session, self._phase = self.session, None, _Phase.DONE
        try:
            await session.rollback()
        finally:
            await session.close()

    async def commit(self) -> None:
        await self.session.commit()


class UnitOfWorkFactory:
    """``uows()`` is a new unit of work on one engine; the sessionmaker is built here, once."""

    def __init__(self, engine: AsyncEngine, timeouts: TransactionTimeouts | None) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._autocommit = async_sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False, autoflush=False
        )
        self._timeouts = timeouts

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self._sessions, self._timeouts)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only: each statement its own autocommit transaction, one round trip; a unit of work
        that rolls back where the timeouts must be set per transaction."""
        if self._timeouts is not None:
            async with self() as uow:
                yield uow.session
            return
        async with self._autocommit() as session:
            event.listen(session.sync_session, "before_flush", _refuse_writes)
            yield session


def _refuse_writes(session: Any, flush_context: Any, instances: Any) -> None:
    raise RuntimeError("a read cannot write: open a unit of work with `uows()`")


class UnitOfWorkFactories:
    """The primary's factory (every write, every background job) and, when there is one, the replica's (reads the
    ReplicaRouter sends there); ``on(engine)`` is the factory of the engine the router picked."""

    def __init__(
        self,
        primary: AsyncEngine,
        replica: AsyncEngine | None,
        timeouts: TransactionTimeouts,
        *,
        on_connection: Iterable[AsyncEngine] = (),
    ) -> None:
        """``timeouts`` are set per transaction, except on the engines ``on_connection`` names: their connections
        carry them from the start (``Engines.bounded()``)."""
        bounded = set(on_connection)
        self.primary = UnitOfWorkFactory(primary, None if primary in bounded else timeouts)
        self.replica = None if replica is None else UnitOfWorkFactory(replica, None if replica in bounded else timeouts)

    def on(self, engine: AsyncEngine) -> UnitOfWorkFactory:
        for factory in (self.primary, self.replica):
            if factory is not None and factory.engine is engine:
                return factory
        raise LookupError("no unit-of-work factory for this engine")
