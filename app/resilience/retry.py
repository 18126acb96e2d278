"""Bounded retries for outbound calls: a cap on attempts, a total deadline, exponential backoff with full jitter.

Why these three bounds together: attempts alone let slow failures (timeouts) add up past the caller's budget, a
deadline alone lets fast failures (503s) hammer the dependency, and backoff without jitter makes every client
that failed together retry together. Full jitter (a uniform draw in ``[0, min(cap, base * 2**(n-1))]``, tenacity's
``wait_random_exponential``) spreads them out. The deadline uses ``stop_before_delay``: tenacity's strict variant
of ``stop_after_delay`` that also refuses to start a backoff sleep ending past the deadline, and each attempt's
timeout is clipped to the time left, so the whole call ends within the deadline.

Only an idempotent operation may be retried (a read, or a write carrying an idempotency key the callee honours);
the caller decides that and says which errors are transient. See notes/fault_tolerance.md, "Retries".
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_before_delay, wait_random_exponential

T = TypeVar("T")

# Transport failures worth another attempt. Not httpx.LocalProtocolError or UnsupportedProtocol: those are bugs in
# the request or the configuration, and would fail the same way every time.
TRANSIENT_TRANSPORT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
# An attempt always gets at least this long, even when the deadline is nearly spent.
MIN_ATTEMPT_TIMEOUT_S = 0.001


def is_transient_http_failure(error: BaseException) -> bool:
    """Timeouts, connection failures and 5xx answers may pass; any other 4xx will come back the same."""
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code >= 500
    return isinstance(error, TRANSIENT_TRANSPORT_ERRORS)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, how long each may take, how long in total, and how long to back off between them."""

    max_attempts: int
    attempt_timeout_s: float
    deadline_s: float
    backoff_base_s: float
    backoff_max_s: float

    def backoff(self) -> wait_random_exponential:
        """Full jitter: before attempt n+1, sleep a uniform draw in ``[0, min(max, base * 2**(n-1))]``."""
        return wait_random_exponential(multiplier=self.backoff_base_s, max=self.backoff_max_s)

    def retrying(self, retry_if: Callable[[BaseException], bool]) -> AsyncRetrying:
        """A fresh tenacity loop; ``reraise`` hands back the last error itself, not tenacity's ``RetryError``."""
        return AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts) | stop_before_delay(self.deadline_s),
            wait=self.backoff(),
            retry=retry_if_exception(retry_if),
            reraise=True,
        )


@dataclasses.dataclass(frozen=True)
class Attempted(Generic[T]):
    """A value and how many attempts it took (a public count, so tests assert exact numbers)."""

    value: T
    attempts: int


class AttemptsFailed(Exception):
    """The operation failed for good: a permanent error, or attempts or deadline used up on transient ones."""

    def __init__(self, *, attempts: int, elapsed_s: float, last_error: Exception) -> None:
        super().__init__(f"gave up after {attempts} attempt(s) in {elapsed_s:.3f} s: {last_error!r}")
        self.attempts = attempts
        self.elapsed_s = elapsed_s
        self.last_error = last_error


async def call_with_retries(
    policy: RetryPolicy,
    attempt: Callable[[float], Awaitable[T]],
    *,
    retry_if: Callable[[BaseException], bool],
) -> Attempted[T]:
    """Run ``attempt(timeout_s)`` under ``policy``; each attempt's timeout is clipped to the time left.

    The time left is measured from tenacity's own start time, the clock its deadline rule reads.
    """
    started = time.monotonic()
    attempts = 0
    try:
        async for retry in policy.retrying(retry_if):
            with retry:
                attempts += 1
                left_s = policy.deadline_s - (time.monotonic() - retry.retry_state.start_time)
                value = await attempt(max(min(policy.attempt_timeout_s, left_s), MIN_ATTEMPT_TIMEOUT_S))
    except Exception as error:
        raise AttemptsFailed(attempts=attempts, elapsed_s=time.monotonic() - started, last_error=error) from error
    return Attempted(value, attempts)
