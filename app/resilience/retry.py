"""Bounded retries for outbound calls: a cap on attempts, a total deadline, exponential backoff with full jitter.

Why these three bounds together: attempts alone let slow failures (timeouts) add up past the caller's budget, a
deadline alone lets fast failures (503s) hammer the dependency, and backoff without jitter makes every client
that failed together retry together. Full jitter (a uniform draw in ``[0, min(cap, base * 2**(n-1))]``, tenacity's
``wait_random_exponential``) spreads them out. The deadline uses ``stop_before_delay``: tenacity's strict variant
of ``stop_after_delay`` that also refuses to start a backoff sleep ending past the deadline, and each attempt's
timeout is clipped to the time left, so the whole call ends within the deadline.

Why one factory (``full_jitter_retrying``) for every retry loop in the app: the payments client and the
SERIALIZABLE re-run (app/resilience/serializable.py) differ only in their bounds and in what they retry, so both
get their tenacity loop here and the backoff and stop rules cannot drift apart.

Only an idempotent operation may be retried (a read, a write carrying an idempotency key the callee honours, or
a transaction the database aborted and rolled back); the caller decides that and says which errors are worth
another attempt. See notes/fault_tolerance.md, "Retries".
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_before_delay, wait_random_exponential
from tenacity.stop import stop_base

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


def full_jitter(base_s: float, max_s: float) -> wait_random_exponential:
    """Before attempt n+1, sleep a uniform draw in ``[0, min(max_s, base_s * 2**(n-1))]``."""
    return wait_random_exponential(multiplier=base_s, max=max_s)


def full_jitter_retrying(
    *,
    max_attempts: int,
    deadline_s: float | None,
    backoff_base_s: float,
    backoff_max_s: float,
    retry_if: Callable[[BaseException], bool],
) -> AsyncRetrying:
    """A fresh tenacity loop: at most ``max_attempts``, none started or slept into past ``deadline_s``, full-jitter
    backoff, another attempt only for an error ``retry_if`` accepts.

    ``deadline_s=None`` leaves attempts as the only bound, for a caller whose every attempt is already bounded
    (a transaction under the server's ``statement_timeout``). ``reraise`` hands back the last error itself, not
    tenacity's ``RetryError``.
    """
    if max_attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {max_attempts}")
    stop: stop_base = stop_after_attempt(max_attempts)
    if deadline_s is not None:
        stop = stop | stop_before_delay(deadline_s)
    return AsyncRetrying(
        stop=stop,
        wait=full_jitter(backoff_base_s, backoff_max_s),
        retry=retry_if_exception(retry_if),
        reraise=True,
    )


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, how long each may take, how long in total, and how long to back off between them."""

    max_attempts: int
    attempt_timeout_s: float
    deadline_s: float
    backoff_base_s: float
    backoff_max_s: float

    def backoff(self) -> wait_random_exponential:
        """Full jitter between ``backoff_base_s`` and its cap ``backoff_max_s`` (see ``full_jitter``)."""
        return full_jitter(self.backoff_base_s, self.backoff_max_s)

    def retrying(self, retry_if: Callable[[BaseException], bool]) -> AsyncRetrying:
        """This policy's loop from the one factory, bounded by attempts and the deadline."""
        return full_jitter_retrying(
            max_attempts=self.max_attempts,
            deadline_s=self.deadline_s,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
            retry_if=retry_if,
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
