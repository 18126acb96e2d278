"""A pooled link that died while idle is replaced at checkout, not handed to the next request: PostgreSQL and Redis.

PostgreSQL: the server ends every idle backend of the app's engine (``pg_terminate_backend``, what a restart, a
failover or a reset link does to it); asyncpg notices the goodbye on its own. The next unit of work must still
succeed on the first try, with no ping spent: the checkout guard of app/db/engines.py swaps the closed link for a
fresh one. See notes/postgres.md ("Dead links in the pool").

Redis: the hop to Redis is cut and healed (the proxy closes every link: the client reads an end of stream), or this
process's own links are killed in the kernel (``ss -K``: the client's socket fails, as on a reset). Once the event
loop has seen each goodbye, as many commands as there were pooled connections, at once, must all succeed: the
client's ``can_read`` (app/cache/client.py) tells the pool to reconnect each. See notes/redis.md ("Dead connections
in the pool").

Each control case removes the guard and shows the same steps fail, so the tests can fail.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator

import asyncpg
import pytest
from pydantic import PostgresDsn
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.cache.client import ResetAwareConnection, open_redis
from app.db import engines
from app.db.engines import build_engine
from app.services.unit_of_work import UnitOfWorkFactory
from app.settings import Settings
from stack.native.stack import NativeStack
from tests.fault_injector import FaultInjector
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


# --- Redis ---------------------------------------------------------------------------------------------------------


def pooled_redis(client: Redis) -> list[ResetAwareConnection]:
    """The pool's idle connections (every one a ``ResetAwareConnection``: ``open_redis`` names the class)."""
    return [c for c in client.connection_pool._available_connections if isinstance(c, ResetAwareConnection)]


async def at_once(client: Redis) -> list[object]:
    """The outcomes of POOLED commands sent at the same moment, so each takes its own connection from the pool."""
    commands = (client.blpop(["dead-links-test"], timeout=0.05) for _ in range(POOLED))
    return list(await asyncio.gather(*commands, return_exceptions=True))


def close_by_cut(fault: FaultInjector, _connections: list[ResetAwareConnection]) -> None:
    """The proxy drops every link (each client reads an end of stream) and takes new ones again."""
    fault("redis", "cut")
    fault("redis", "heal")


def kill_in_kernel(_fault: FaultInjector, connections: list[ResetAwareConnection]) -> None:
    """``ss -K`` on this process's own sockets, one by one (each read then fails, as on a reset)."""
    for connection in connections:
        assert connection._writer is not None
        local_port = connection._writer.get_extra_info("sockname")[1]
        socket_filter = f"sport = :{local_port} dst 127.0.0.1 dport = :{connection.port}"
        subprocess.run(["ss", "-K", "-tn", *socket_filter.split()], check=True, capture_output=True)


@pytest.fixture(params=[close_by_cut, kill_in_kernel], ids=["closed-by-peer", "killed-in-kernel"])
async def redis_with_dead_idle_connections(
    request: pytest.FixtureRequest, stack: NativeStack, fault: FaultInjector
) -> AsyncIterator[Redis]:
    """The app's Redis client, through the fault proxy, whose POOLED idle connections are dead and seen so."""
    client = open_redis(Settings(redis_url=stack.redis.url))
    try:
        assert await at_once(client) == [None] * POOLED
        connections = pooled_redis(client)
        assert len(connections) == POOLED
        request.param(fault, connections)

        async def all_seen() -> bool:
            readers = [connection._reader for connection in connections]
            return all(r is not None and (r.at_eof() or r.exception() is not None) for r in readers)

        await wait_for_async(all_seen, timeout_s=5, what="the event loop to see every pooled connection's end")
        yield client
    finally:
        await client.aclose()


@pytest.mark.fault
async def test_every_redis_command_after_idle_connections_died_succeeds_first_time(
    redis_with_dead_idle_connections: Redis,
) -> None:
    assert await at_once(redis_with_dead_idle_connections) == [None] * POOLED
    assert len(pooled_redis(redis_with_dead_idle_connections)) == POOLED  # reconnected in place, none added


@pytest.mark.fault
async def test_without_the_pool_guard_each_dead_redis_connection_fails_a_command(
    redis_with_dead_idle_connections: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ResetAwareConnection, "can_read", Connection.can_read)
    outcomes = await at_once(redis_with_dead_idle_connections)
    assert all(isinstance(outcome, RedisConnectionError) for outcome in outcomes), outcomes
