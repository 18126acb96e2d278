"""Run a read-decide-write unit under SERIALIZABLE again when PostgreSQL aborts it: a bounded retry on 40001.

Why a loop is part of SERIALIZABLE: PostgreSQL prevents write skew by aborting one of the conflicting transactions
with SQLSTATE 40001 (serialization_failure), at any statement and as late as COMMIT. The abort is the protocol,
not a fault, and the aborted work is only correct if it is run again from its first read, on a fresh snapshot. So
the unit of work is a callable that opens its own transaction each time. Deadlocks (40P01) are retried for the
same reason. The loop is the app's one retry loop (``full_jitter_retrying`` in app/resilience/retry.py): bounded
in attempts, full-jitter backoff so contenders that failed together do not collide again in lockstep, and once
attempts are spent the last error propagates unchanged. It has no deadline of its own: each attempt is a
transaction, already bounded by the server's per-transaction timeouts.

Why it lives in ``resilience`` and not in ``db``: it is a retry policy, and the packages import downwards only
(api → services → payments → resilience → db → domain), so ``resilience`` may read ``app.db.errors`` while
``db`` may not import the retry factory. What a SQLSTATE means stays in app/db/errors.py. See notes/postgres.md
("Isolation levels, proved").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from app.db.errors import is_retryable_conflict
from app.resilience.retry import full_jitter_retrying

T = TypeVar("T")


async def run_serializable(
    attempt: Callable[[], Awaitable[T]], *, attempts: int, backoff_base_s: float, backoff_max_s: float
) -> T:
    """Await ``attempt()`` until it returns, re-running it after a 40001 or 40P01, at most ``attempts`` times.

    ``attempt`` must begin and commit its own SERIALIZABLE transaction (commit inside: the abort may come there).
    Any other error propagates at once; after the last attempt the serialization failure itself propagates.
    """
    retrying = full_jitter_retrying(
        max_attempts=attempts,
        deadline_s=None,
        backoff_base_s=backoff_base_s,
        backoff_max_s=backoff_max_s,
        retry_if=is_retryable_conflict,
    )
    result: T = await retrying(attempt)
    return result
