"""Run a read-decide-write unit under SERIALIZABLE again when PostgreSQL aborts it: a bounded retry on 40001.

Why a loop is part of SERIALIZABLE: PostgreSQL prevents write skew by aborting one of the conflicting transactions
with SQLSTATE 40001 (serialization_failure), sometimes only at COMMIT. The abort is the protocol, not a fault, and
the aborted work is only correct if it is run again from its first read, on a fresh snapshot. So the unit of work
is a callable that opens its own transaction each time. Deadlocks (40P01) are retried for the same reason. The loop
is bounded in attempts and backs off with full jitter (a uniform draw in ``[0, min(max, base * 2**(n-1))]``), so
contenders that failed together do not collide again in lockstep; once attempts are spent, the last error
propagates unchanged. See notes/postgres.md ("Isolation levels, proved").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

T = TypeVar("T")

SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
RETRYABLE_SQLSTATES = frozenset({SERIALIZATION_FAILURE, DEADLOCK_DETECTED})


def sqlstate_of(error: BaseException) -> str | None:
    """The SQLSTATE of an asyncpg error, also when SQLAlchemy wrapped it (``orig``) or it was re-raised (``cause``)."""
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        code = getattr(current, "sqlstate", None)
        if isinstance(code, str):
            return code
        pending += [e for e in (getattr(current, "orig", None), current.__cause__) if isinstance(e, BaseException)]
    return None


def is_retryable_conflict(error: BaseException) -> bool:
    return sqlstate_of(error) in RETRYABLE_SQLSTATES


async def run_serializable(
    attempt: Callable[[], Awaitable[T]], *, attempts: int, backoff_base_s: float, backoff_max_s: float
) -> T:
    """Await ``attempt()`` until it returns, re-running it after a 40001 or 40P01, at most ``attempts`` times.

    ``attempt`` must begin and commit its own SERIALIZABLE transaction (commit inside: the abort may come there).
    Any other error propagates at once; after the last attempt the serialization failure itself propagates.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=backoff_base_s, max=backoff_max_s),
        retry=retry_if_exception(is_retryable_conflict),
        reraise=True,
    )
    result: T = await retrying(attempt)
    return result
