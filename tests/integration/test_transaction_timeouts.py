"""A writer queued behind a row lock gives up after ``lock_timeout`` with a clear 409, instead of hanging.

A transaction opened here (a direct asyncpg connection, past the fault proxy) locks an event's row with
``SELECT … FOR UPDATE`` and keeps it. ``PATCH /api/v1/events/{id}`` through Nginx then waits for that lock inside
a unit of work that began with ``SET LOCAL lock_timeout`` (500 ms in the test stack): PostgreSQL cancels the wait
with SQLSTATE 55P03 and the app answers 409 ``resource-busy`` in about half a second, far inside Nginx's 5 s. Once
the lock is gone the same PATCH succeeds. See notes/postgres.md, "Plans, indexes and timeouts".
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from stack.native.stack import NativeStack
from tests.api_users import call, create_event, new_user

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
