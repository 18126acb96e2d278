"""The bounded 40001 retry loop of app/resilience/serializable.py, without a database: attempts counted exactly.

See notes/postgres.md ("Isolation levels, proved").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError

from app.db.errors import sqlstate_of
from app.resilience.serializable import run_serializable

Attempt = Callable[[], Awaitable[str]]


def failing_then(value: str, errors: list[Exception]) -> tuple[list[int], Attempt]:
    """An attempt that raises ``errors`` in turn, then returns ``value``; the list counts the calls."""
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return value

    return calls, attempt


async def retried(attempt: Attempt, attempts: int) -> str:
    """No backoff: these tests count attempts, and the jitter is tenacity's ``wait_random_exponential``."""
    return await run_serializable(attempt, attempts=attempts, backoff_base_s=0.0, backoff_max_s=0.0)


async def test_a_serialization_failure_is_run_again_until_the_work_commits() -> None:
    calls, attempt = failing_then("booked", [asyncpg.exceptions.SerializationError("conflict")] * 2)
    assert await retried(attempt, 3) == "booked"
    assert calls == [1, 2, 3]


async def test_after_the_last_attempt_the_serialization_failure_itself_propagates() -> None:
    calls, attempt = failing_then("never", [asyncpg.exceptions.SerializationError("conflict")] * 10)
    with pytest.raises(asyncpg.exceptions.SerializationError):
        await retried(attempt, 4)
    assert calls == [1, 2, 3, 4]


async def test_a_deadlock_is_retried_like_a_serialization_failure() -> None:
    calls, attempt = failing_then("booked", [asyncpg.exceptions.DeadlockDetectedError("cycle")])
    assert await retried(attempt, 2) == "booked"
    assert calls == [1, 2]


async def test_any_other_error_propagates_at_once() -> None:
    calls, attempt = failing_then("never", [asyncpg.exceptions.UniqueViolationError("taken")])
    with pytest.raises(asyncpg.exceptions.UniqueViolationError):
        await retried(attempt, 5)
    assert calls == [1]


async def test_a_failure_wrapped_by_sqlalchemy_is_recognised() -> None:
    wrapped = DBAPIError("commit", None, asyncpg.exceptions.SerializationError("conflict"))
    assert sqlstate_of(wrapped) == "40001"
    assert sqlstate_of(RuntimeError("re-raised")) is None
    calls, attempt = failing_then("booked", [wrapped])
    assert await retried(attempt, 2) == "booked"
    assert calls == [1, 2]


async def test_at_least_one_attempt_is_required() -> None:
    calls, attempt = failing_then("never", [])
    with pytest.raises(ValueError, match="at least 1"):
        await retried(attempt, 0)
    assert calls == []
