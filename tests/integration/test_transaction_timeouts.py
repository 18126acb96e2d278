"""A writer queued behind a row lock gives up after ``lock_timeout`` with a clear 409, instead of hanging.

A transaction opened here (a direct asyncpg connection, past the fault proxy) locks an event's row with
``SELECT … FOR UPDATE`` and keeps it. ``PATCH /api/v1/events/{id}`` through Nginx then waits for that lock inside
a unit of work that began with ``SET LOCAL lock_timeout`` (500 ms in the test stack): PostgreSQL cancels the wait
with SQLSTATE 55P03 and the app answers 409 ``resource-busy`` in about half a second, far inside Nginx's 5 s. Once
the lock is gone the same PATCH succeeds. The same reasoning for migrations: one queued behind a long
transaction gives up after its own ``lock_timeout``, and so does a background job (the reconciler's units of work
come from the same factory as a request's). See notes/postgres.md, "Plans, indexes and timeouts" and
"Migrations".
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.errors import LOCK_NOT_AVAILABLE, sqlstate_of
from app.observability.metrics import build_reconciler_metrics
from app.payments.client import open_payments_client
from app.services.payment_attempts import Reconciled
from app.services.reconciler import PaymentReconciler
from app.services.unit_of_work import TransactionTimeouts, UnitOfWorkFactory
from app.settings import Settings
from stack.native.stack import NativeStack
from tests.api_users import call, create_event, new_user
from tests.private_database import REPO, private_database, sqlalchemy_url

LOCK_TIMEOUT_S = 0.5  # REFSTACK_DB_LOCK_TIMEOUT_MS in tests/conftest.py


async def test_a_writer_blocked_by_a_row_lock_fails_fast_with_resource_busy(stack: NativeStack) -> None:
    organizer = new_user(stack, organizer=True, label="organizer")
    event = create_event(stack, organizer)
    path = f"/api/v1/events/{event['id']}"
    etag = call(stack, "GET", path)[1]["etag"]

    async def patch(title: str) -> tuple[int, dict[str, str], Any]:
        conditional = {"If-Match": etag}
        return await asyncio.to_thread(
            call, stack, "PATCH", path, user=organizer, body={"title": title}, headers=conditional
        )

    blocker = await asyncpg.connect(stack.primary.direct_url)
    try:
        locked = blocker.transaction()
        await locked.start()
        await blocker.execute("SELECT 1 FROM event WHERE id = $1 FOR UPDATE", event["id"])
        began = time.monotonic()
        status, headers, body = await patch("Blocked")
        waited = time.monotonic() - began
        await locked.rollback()
    finally:
        await blocker.close()

    print(f"\nblocked PATCH answered {status} in {waited * 1000:.0f} ms")
    assert status == 409, body
    assert headers["content-type"] == "application/problem+json"
    assert body["type"] == "https://refstack.dev/problems/resource-busy"
    assert LOCK_TIMEOUT_S <= waited < LOCK_TIMEOUT_S + 1.5  # gave up at lock_timeout, not at 5 s or never

    status, _, body = await patch("Unblocked")
    assert status == 200, body
    assert body["title"] == "Unblocked"


def alembic(dsn: str, *args: str, lock_timeout_ms: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REFSTACK_DATABASE_URL": sqlalchemy_url(dsn)}
    env["REFSTACK_MIGRATION_LOCK_TIMEOUT_MS"] = str(lock_timeout_ms)
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


async def test_a_migration_queued_behind_a_long_transaction_gives_up_instead_of_blocking_everyone(
    stack: NativeStack,
) -> None:
    """Migration 0004 adds a foreign key to ``event``, which needs a lock that conflicts with any writer of
    ``event``. Behind a transaction that keeps writing there, it must fail within its ``lock_timeout`` (and leave
    nothing half-done: Alembic runs in one transaction), then succeed once the writer is gone."""
    with private_database(stack, "migrate") as dsn:
        assert alembic(dsn, "downgrade", "0003", lock_timeout_ms=3000).returncode == 0  # before event_webhook
        writer = await asyncpg.connect(dsn)
        try:
            async with writer.transaction():
                await writer.execute("LOCK TABLE event IN ROW EXCLUSIVE MODE")  # what any UPDATE of an event takes
                blocked = await asyncio.to_thread(alembic, dsn, "upgrade", "head", lock_timeout_ms=300)
        finally:
            await writer.close()
        assert blocked.returncode != 0
        assert "lock timeout" in blocked.stderr
        tables = stack.primary.sql(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'event_webhook'", database=dsn.rsplit("/", 1)[1]
        )
        assert tables == "0"  # nothing half-applied
        assert (await asyncio.to_thread(alembic, dsn, "upgrade", "head", lock_timeout_ms=300)).returncode == 0


async def test_a_reconciler_blocked_behind_a_row_lock_gives_up_at_lock_timeout_as_a_request_does(
    stack: NativeStack,
) -> None:
    """The reconciler's transactions come from the same unit-of-work factory as a request's, with the same
    ``lock_timeout``: its give-back, queued behind a user's transaction that holds the hold's row, fails with 55P03
    in about half a second instead of pinning a pooled connection until the user lets go."""
    buyer = new_user(stack, label="reconcile-blocked")
    organizer = new_user(stack, organizer=True, label="reconcile-blocked-organizer")
    event = create_event(stack, organizer)
    seats = call(stack, "GET", f"/api/v1/events/{event['id']}/seats")[2]["items"]
    status, _, hold = call(
        stack, "POST", f"/api/v1/events/{event['id']}/holds", user=buyer, body={"seat_ids": [seats[0]["id"]]}
    )
    assert status == 201, hold
    stack.primary.sql(  # an attempt with an unknown outcome, past this reconciler's grace, inside the app's own (60 s)
        "UPDATE hold SET status = 'paying', payment_key = 'hold-blocked-test',"
        f" paying_since = now() - interval '20 seconds' WHERE id = '{hold['id']}'",
        database="refstack",
    )
    engine = create_async_engine(sqlalchemy_url(stack.primary.direct_url), pool_size=2, max_overflow=0)
    payments = open_payments_client(Settings(payments_url=stack.payments.url))
    reconciler = PaymentReconciler(
        UnitOfWorkFactory(engine, TransactionTimeouts(lock_ms=int(LOCK_TIMEOUT_S * 1000), statement_ms=4000)),
        payments,
        grace_s=10.0,
        batch=1000,
        metrics=build_reconciler_metrics(CollectorRegistry()),
    )
    blocker = await asyncpg.connect(stack.primary.direct_url)
    try:
        leased = next(h for h in await reconciler.take_due() if str(h.id) == hold["id"])
        async with blocker.transaction():
            await blocker.execute("SELECT 1 FROM hold WHERE id = $1 FOR UPDATE", hold["id"])
            began = time.monotonic()
            with pytest.raises(DBAPIError) as blocked:
                await reconciler.apply(leased, None)  # "no charge under this key": give the hold back
            waited = time.monotonic() - began
        assert sqlstate_of(blocked.value) == LOCK_NOT_AVAILABLE
        assert LOCK_TIMEOUT_S <= waited < LOCK_TIMEOUT_S + 1.5
        assert await reconciler.apply(leased, None) is Reconciled.RELEASED  # the lock is gone: the step goes through
    finally:
        await blocker.close()
        await payments.aclose()
        await engine.dispose()
