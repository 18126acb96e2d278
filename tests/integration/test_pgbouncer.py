"""PgBouncer in transaction mode: the prepared-statement pitfall with asyncpg, its cure, and the server-side cap.

The pitfall is staged on PgBouncer's ``refstack_two_servers`` entry (two server connections, reused last-in
first-out), so which server a client lands on is predictable: client X prepares a statement on server A; client
Y opens a transaction, which takes A; X runs its statement again, lands on server B, where that statement was
never prepared. With asyncpg's default statement cache the second run fails; with ``statement_cache_size=0`` the
same steps succeed, and unnamed statements stay safe under concurrency. Then the app's own engine, built with
``db_transaction_pooler``, runs concurrent units of work through PgBouncer while the same engine without the knob
fails at once: it sends its timeouts as startup parameters, which PgBouncer 1.18 refuses (notes/postgres.md, "One
read, one round trip"), and the whole app (in-process, real Redis, RabbitMQ and replica) serves requests through
it. Last, many clients get no more server backends than PgBouncer's pool size: the rest queue inside PgBouncer.
See notes/db_scaling.md ("Pooling: PgBouncer in transaction mode").
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from pydantic import PostgresDsn
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.db.engines import build_engine
from app.services.unit_of_work import TransactionTimeouts, UnitOfWorkFactory
from app.settings import Settings
from stack.native.pgbouncer import TWO_SERVER_DATABASE
from stack.native.stack import NativeStack, asyncpg_url
from tests.in_process_app import running

QUERY = "SELECT count(*) + $1::int FROM pg_class"


async def x_runs_a_statement_again_while_y_holds_its_server(stack: NativeStack, **connect_args: Any) -> int:
    """The scripted interleaving of the module docstring; returns X's second result (or raises its error)."""
    url = stack.pgbouncer.url_for(TWO_SERVER_DATABASE)
    x = await asyncpg.connect(url, **connect_args)
    y = await asyncpg.connect(url, **connect_args)
    try:
        await x.fetchval(QUERY, 1)  # prepared (and, by default, cached) on server A, which then goes idle
        holds_a_server = y.transaction()
        await holds_a_server.start()  # last in, first out: Y's BEGIN takes server A
        try:
            result: int = await x.fetchval(QUERY, 1)  # X gets server B
        finally:
            await holds_a_server.rollback()
        return result
    finally:
        await asyncio.gather(x.close(), y.close())


async def test_a_cached_statement_runs_on_a_server_where_it_was_never_prepared(stack: NativeStack) -> None:
    with pytest.raises(asyncpg.InvalidSQLStatementNameError, match=r'prepared statement "__asyncpg_stmt_\w+__"'):
        await x_runs_a_statement_again_while_y_holds_its_server(stack)


async def test_statement_cache_size_zero_cures_it(stack: NativeStack) -> None:
    assert await x_runs_a_statement_again_while_y_holds_its_server(stack, statement_cache_size=0) > 1


async def test_unnamed_statements_are_safe_with_many_clients_on_two_servers(stack: NativeStack) -> None:
    """asyncpg sends Parse+Describe+Flush, then Bind+Execute+Sync: PgBouncer keeps one server for the pair."""
    url = stack.pgbouncer.url_for(TWO_SERVER_DATABASE)
    clients = [await asyncpg.connect(url, statement_cache_size=0) for _ in range(8)]

    async def queries(conn: asyncpg.Connection, n: int) -> list[int]:
        return [await conn.fetchval(QUERY, n) for _ in range(100)]

    try:
        results = await asyncio.gather(*(queries(conn, n) for n, conn in enumerate(clients)))
    finally:
        await asyncio.gather(*(conn.close() for conn in clients))
    assert [len(set(per_client)) for per_client in results] == [1] * 8  # 800 answers, each client's the same


async def units_of_work_through_pgbouncer(stack: NativeStack, *, transaction_pooler: bool) -> list[int]:
    """What a request does: a unit of work (``SET LOCAL`` timeouts, then a query), 8 at once, 5 rounds, on 2 servers."""
    settings = Settings(
        database_url=PostgresDsn(stack.pgbouncer.url_for(TWO_SERVER_DATABASE)),
        db_pool_size=4,
        db_transaction_pooler=transaction_pooler,
    )
    engine = build_engine(settings.database_url, settings, transaction_pooler=settings.db_transaction_pooler)
    timeouts = TransactionTimeouts.of(settings)

    async def request(n: int) -> int:
        async with UnitOfWorkFactory(engine, timeouts)() as uow:
            count = await uow.session.scalar(text("SELECT count(*) + :n FROM pg_class"), {"n": n})
            return int(count or 0)

    try:
        results: list[int] = []
        for _ in range(5):  # every request of a round finishes before the engine may be disposed
            outcomes = await asyncio.gather(*(request(n) for n in range(8)), return_exceptions=True)
            failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
            if failures:
                raise failures[0]
            results += [outcome for outcome in outcomes if isinstance(outcome, int)]
        return results
    finally:
        await engine.dispose()


async def test_the_apps_engine_with_the_pooler_setting_runs_concurrent_work_through_pgbouncer(
    stack: NativeStack,
) -> None:
    results = await units_of_work_through_pgbouncer(stack, transaction_pooler=True)
    assert len(results) == 40
    assert all(count > 0 for count in results)


async def test_the_apps_engine_without_the_setting_breaks_behind_pgbouncer(stack: NativeStack) -> None:
    with pytest.raises(DBAPIError, match=r"unsupported startup parameter: (lock|statement)_timeout"):
        await units_of_work_through_pgbouncer(stack, transaction_pooler=False)


def app_clients_of_pgbouncer(stack: NativeStack) -> int:
    return sum(
        1 for row in stack.pgbouncer.admin("SHOW CLIENTS") if (row["database"], row["user"]) == ("refstack", "app")
    )


async def test_the_whole_app_serves_requests_through_pgbouncer(stack: NativeStack) -> None:
    """The app in-process, its primary behind PgBouncer: readiness, a registration, a login, 20 reads at once; its
    pooled primary connections are PgBouncer's clients."""
    settings = Settings.model_validate(
        {
            "env": "test",
            "database_url": asyncpg_url(stack.pgbouncer.url),
            "replica_url": asyncpg_url(stack.replica.url),
            "redis_url": stack.redis.url,
            "amqp_url": stack.rabbitmq.url,
            "payments_url": stack.payments.url,
            "db_transaction_pooler": True,
            "sweeper_enabled": False,
            "outbox_relay_enabled": False,  # the stack's relays publish; see tests/integration/test_rate_limits.py
        }
    )
    async with running(settings) as app:
        ready = await app.client.get("/health/ready")
        assert (ready.status_code, ready.json()["checks"]["postgres"]["status"]) == (200, "up"), ready.text
        credentials = {"email": f"pooled-{uuid.uuid4().hex[:12]}@example.com", "password": f"pw-{uuid.uuid4().hex}"}
        registered = await app.client.post("/api/v1/auth/register", json=credentials)
        assert registered.status_code == 201, registered.text
        form = {"username": credentials["email"], "password": credentials["password"]}
        token = await app.client.post("/api/v1/auth/token", data=form)
        assert token.status_code == 200, token.text
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        reads = await asyncio.gather(*(app.client.get("/api/v1/me/bookings", headers=bearer) for _ in range(20)))
        assert [read.status_code for read in reads] == [200] * 20
        assert app_clients_of_pgbouncer(stack) >= 1  # the app's primary engine is connected to PgBouncer


async def test_many_clients_share_no_more_server_backends_than_the_pool_size(stack: NativeStack) -> None:
    """30 clients each hold a server for 0.3 s; PostgreSQL never sees more than ``pool_size`` of them at once."""
    clients = 3 * stack.pgbouncer.pool_size
    marker = "pool-cap-probe"
    sampler = await asyncpg.connect(stack.primary.direct_url)
    sleepers = [await asyncpg.connect(stack.pgbouncer.url, statement_cache_size=0) for _ in range(clients)]
    try:
        work = asyncio.gather(*(conn.fetchval(f"SELECT pg_sleep(0.3) /* {marker} */") for conn in sleepers))
        seen: list[int] = []
        waiting: list[int] = []
        while not work.done():
            seen.append(
                await sampler.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || $1 || '%'"
                    " AND pid <> pg_backend_pid()",
                    marker,
                )
            )
            pools = await asyncio.to_thread(stack.pgbouncer.admin, "SHOW POOLS")
            waiting += [int(row["cl_waiting"]) for row in pools if row["database"] == "refstack"]
        await work
    finally:
        await asyncio.gather(sampler.close(), *(conn.close() for conn in sleepers))
    print(
        f"\nactive backends seen: max {max(seen)} of {clients} clients; max clients queued in PgBouncer {max(waiting)}"
    )
    assert max(seen) == stack.pgbouncer.pool_size  # the cap is reached and never passed
    assert max(waiting) > 0  # the others queued inside PgBouncer instead of opening backends
