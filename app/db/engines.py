"""The primary and replica ``AsyncEngine``s, built from settings, and the readiness ping that cannot hang them.

Why these options: asyncpg's ``timeout`` bounds connecting and ``command_timeout`` bounds every statement, so a
frozen server costs seconds, not forever; ``pool_timeout`` bounds the wait for a free connection; ``pool_pre_ping``
is off because readiness checks find a dead database, and a ping on every checkout would double round trips.
Engines connect lazily, so the app starts while PostgreSQL is still down.

Why a checkout check instead of the ping: a pooled link that died while idle (the server terminated the backend,
restarted, or a reset ended the TCP link) has already told the event loop so: asyncpg marks the connection closed
when the reset or the server's goodbye arrives. Handing it out anyway made the first request on it a 503 and the
first background job on it a failure, after the database was fine again. ``discard_closed`` asks asyncpg's local
flag (no round trip) and swaps such a link for a fresh one before anyone uses it. A link that dies *during* a
request still fails that request (a retryable 503): only the application knows whether its work may run twice.

Why the server-side bounds (``lock_timeout``, ``statement_timeout``) travel in the startup packet
(``server_settings``): every connection carries them from its first byte, so a read is bounded without a statement
of its own (one autocommit round trip, app/services/unit_of_work.py) and a write without a ``SET LOCAL``. With
``db_transaction_pooler`` the primary is reached through PgBouncer in transaction mode: PgBouncer 1.18 refuses
startup parameters it does not know, and a session ``SET`` would follow the server connection to other clients, so
there the bounds stay per transaction and no prepared statement outlives its transaction.
See notes/postgres.md ("Plans, indexes and timeouts"), notes/fastapi.md ("Readiness") and notes/db_scaling.md
("Pooling").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from pydantic import PostgresDsn
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.settings import Settings

DRIVER = "postgresql+asyncpg"


def asyncpg_url(dsn: PostgresDsn) -> str:
    """The DSN with the driver this app uses, whatever scheme was configured (``postgresql://`` included)."""
    return make_url(str(dsn)).set(drivername=DRIVER).render_as_string(hide_password=False)


def build_engine(dsn: PostgresDsn, settings: Settings, *, transaction_pooler: bool = False) -> AsyncEngine:
    connect_args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout_s,
        "command_timeout": settings.db_command_timeout_s,
    }
    if transaction_pooler:
        connect_args.update(TRANSACTION_POOLER_ARGS)
    else:
        connect_args["server_settings"] = session_timeouts(settings)
    engine = create_async_engine(
        asyncpg_url(dsn),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout_s,
        pool_pre_ping=False,
        connect_args=connect_args,
    )
    event.listen(engine.sync_engine, "do_connect", _connect_or_unreachable)
    event.listen(engine.sync_engine.pool, "checkout", discard_closed)
    return engine


def discard_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled link asyncpg already knows is closed goes, and the pool opens a fresh one in its place (SQLAlchemy's
    ``DisconnectionError`` on checkout): a local flag, no round trip."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the pooled connection was closed while idle")


def session_timeouts(settings: Settings) -> dict[str, str]:
    """The server-side bounds every direct connection starts with (milliseconds, as PostgreSQL reads a bare
    number for these two)."""
    return {
        "lock_timeout": str(settings.db_lock_timeout_ms),
        "statement_timeout": str(settings.db_statement_timeout_ms),
    }


class DatabaseUnreachable(Exception):
    """No connection could be opened: refused, reset or timed out. The server is down or moving (failover)."""


def _connect_or_unreachable(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
    """Open the connection as SQLAlchemy would, naming a transport failure for what it is.

    Why here: SQLAlchemy wraps only driver errors, so asyncpg failing to *connect* surfaces as a bare ``OSError``
    (``ConnectionRefusedError``, ``ConnectionResetError``, ``TimeoutError``) that nothing above could tell from any
    other ``OSError``. Translated at the one place that opens connections, the API maps it to a retryable 503."""
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as error:
        raise DatabaseUnreachable(f"cannot open a database connection: {error!r}") from error


def unique_statement_name() -> str:
    """A name no other client of the same server connection can have chosen (asyncpg counts from 1 per process)."""
    return f"__asyncpg_{uuid4().hex}__"


# Behind a transaction pooler the next transaction may run on another server connection: asyncpg must not reuse a
# statement it prepared earlier (its cache and SQLAlchemy's are off), and the statement SQLAlchemy prepares inside
# each transaction gets a name that cannot collide with one that another process left on that server.
TRANSACTION_POOLER_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": unique_statement_name,
}


@dataclass(frozen=True)
class Engines:
    """``replica`` is the primary itself when no replica is configured. ``primary_bounded``: the primary's
    connections carry the server-side timeouts from their start (False behind a transaction pooler); the replica's
    always do."""

    primary: AsyncEngine
    replica: AsyncEngine
    primary_bounded: bool = True

    def bounded(self) -> tuple[AsyncEngine, ...]:
        """The engines whose connections carry the server-side timeouts from their start."""
        replica = (self.replica,) if self.replica is not self.primary else ()
        return (self.primary, *replica) if self.primary_bounded else replica

    @classmethod
    def open(cls, settings: Settings) -> Engines:
        primary = build_engine(settings.database_url, settings, transaction_pooler=settings.db_transaction_pooler)
        replica = build_engine(settings.replica_url, settings) if settings.replica_url else primary
        return cls(primary=primary, replica=replica, primary_bounded=not settings.db_transaction_pooler)

    async def dispose(self) -> None:
        if self.replica is not self.primary:
            await self.replica.dispose()
        await self.primary.dispose()


async def ping(engine: AsyncEngine) -> None:
    """``SELECT 1`` on a pooled connection, cancellable at once (see ``fetch_row``)."""
    await fetch_row(engine, "SELECT 1")


async def fetch_row(engine: AsyncEngine, query: str) -> Any:
    """One row of ``query`` on a pooled connection; a connection whose query did not finish is closed, not pooled.

    Why not ``conn.execute``: when a timeout cancels a SQLAlchemy execute, SQLAlchemy does invalidate the
    connection, but it first tries a graceful asyncpg ``close(timeout=2)``, which on a frozen server waits the full
    two seconds and blows the caller's budget. Here the query runs on the driver connection and, on any failure or
    cancellation, that connection is terminated at once (no network wait) and then invalidated, so the pool drops
    it and the next checkout opens a fresh one. Readiness and the ReplicaRouter's probes rely on this.
    """
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        try:
            return await driver.fetchrow(query)
        except BaseException:
            driver.terminate()
            await conn.invalidate()
            raise
