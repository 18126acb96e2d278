"""A pooled database link that died while idle is replaced at checkout, not handed to the next request.

The server ends every idle backend of the app's engine (``pg_terminate_backend``, what a restart, a failover or a
reset link does to it); asyncpg notices the goodbye on its own. The next unit of work must still succeed on the
first try, with no ping spent: the checkout guard of app/db/engines.py swaps the closed link for a fresh one. The
control case removes the guard and shows the same steps fail, so the test can fail. See notes/postgres.md
("Dead links in the pool").
"""

from __future__ import annotations

import asyncpg
import pytest
from pydantic import PostgresDsn
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import engines
from app.db.engines import build_engine
from app.services.unit_of_work import UnitOfWorkFactory
from app.settings import Settings
from stack.native.stack import NativeStack
from tests.polling import wait_for_async

POOLED = 3


async def engine_with_dead_idle_links(stack: NativeStack) -> AsyncEngine:
    """An engine whose POOLED idle links the server has ended, each already seen as closed by asyncpg."""
    application = "dead-links-test"
    settings = Settings(database_url=PostgresDsn(stack.primary.direct_url), db_pool_size=POOLED)
    engine = build_engine(settings.database_url, settings)
    connections = [await engine.connect() for _ in range(POOLED)]
    for connection in connections:
        await connection.execute(text("SELECT set_config('application_name', :name, false)"), {"name": application})
        await connection.commit()
    drivers = [(await connection.get_raw_connection()).driver_connection for connection in connections]
    for connection in connections:
        await connection.close()  # back into the pool, idle
    admin = await asyncpg.connect(stack.primary.direct_url)
    try:
        ended = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", application
        )
    finally:
        await admin.close()
    assert ended == POOLED

    async def all_closed() -> bool:
        return all(driver is not None and driver.is_closed() for driver in drivers)

    await wait_for_async(all_closed, timeout_s=5, what="asyncpg to see every ended link closed")
    return engine


async def test_every_unit_of_work_after_idle_links_died_succeeds_first_time(stack: NativeStack) -> None:
    engine = await engine_with_dead_idle_links(stack)
    try:
        uows = UnitOfWorkFactory(engine, None)
        for _ in range(POOLED):
            async with uows() as uow:
                assert await uow.session.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()


async def test_without_the_checkout_guard_the_first_unit_of_work_fails(stack: NativeStack) -> None:
    engine = await engine_with_dead_idle_links(stack)
    event.remove(engine.sync_engine.pool, "checkout", engines.discard_closed)
    try:
        with pytest.raises(DBAPIError) as failed:
            async with UnitOfWorkFactory(engine, None)() as uow:
                await uow.session.scalar(text("SELECT 1"))
        assert failed.value.connection_invalidated
    finally:
        await engine.dispose()
