"""Alembic environment: the URL comes from ``Settings`` (``REFSTACK_DATABASE_URL``), the metadata from
``app.db.base.Base`` with its naming convention, and online migrations run on the async asyncpg engine.

Why not ``sqlalchemy.url`` in alembic.ini: one source of truth for where the database is, and no password in a
committed file. See notes/postgres.md, "Migrations".
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.db import models  # noqa: F401 - importing registers every table on Base.metadata
from app.db.base import Base
from app.db.engines import asyncpg_url
from app.settings import Settings


def run_offline(url: str) -> None:
    """``alembic upgrade --sql``: render the SQL without connecting."""
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        compare_type=True,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_online(url: str, settings: Settings) -> None:
    """No ``command_timeout``: a migration may legitimately run for minutes (an index build). But a short
    ``lock_timeout``: an ``ALTER TABLE`` waiting for its lock behind one long transaction makes every later query on
    that table wait behind *it*, so a stuck migration is a full outage; failing fast and retrying is not."""
    connect_args = {
        "timeout": settings.db_connect_timeout_s,
        "server_settings": {"lock_timeout": f"{settings.migration_lock_timeout_ms}ms"},
    }
    engine = create_async_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_on)
    finally:
        await engine.dispose()


def main() -> None:
    if context.config.config_file_name is not None:
        fileConfig(context.config.config_file_name)
    settings = Settings()
    url = asyncpg_url(settings.database_url)
    if context.is_offline_mode():
        run_offline(url)
    else:
        asyncio.run(run_online(url, settings))


main()
