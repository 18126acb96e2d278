"""The primary and replica ``AsyncEngine``s, built from settings, and the readiness ping that cannot hang them.

Why these options: asyncpg's ``timeout`` bounds connecting and ``command_timeout`` bounds every statement, so a
frozen server costs seconds, not forever; ``pool_timeout`` bounds the wait for a free connection; ``pool_pre_ping``
is off because readiness checks find a dead database, and a ping on every checkout would double round trips.
Engines connect lazily, so the app starts while PostgreSQL is still down. See notes/postgres.md and
notes/fastapi.md, "Readiness".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import PostgresDsn
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.settings import Settings

DRIVER = "postgresql+asyncpg"


def asyncpg_url(dsn: PostgresDsn) -> str:
    """The DSN with the driver this app uses, whatever scheme was configured (``postgresql://`` included)."""
    return make_url(str(dsn)).set(drivername=DRIVER).render_as_string(hide_password=False)


def build_engine(dsn: PostgresDsn, settings: Settings) -> AsyncEngine:
    return create_async_engine(
        asyncpg_url(dsn),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout_s,
        pool_pre_ping=False,
        connect_args={"timeout": settings.db_connect_timeout_s, "command_timeout": settings.db_command_timeout_s},
    )


@dataclass(frozen=True)
class Engines:
    """``replica`` is the primary itself when no replica is configured."""

    primary: AsyncEngine
    replica: AsyncEngine

    @classmethod
    def open(cls, settings: Settings) -> Engines:
        primary = build_engine(settings.database_url, settings)
        replica = build_engine(settings.replica_url, settings) if settings.replica_url else primary
        return cls(primary=primary, replica=replica)

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
