"""The retry policy on its own: production defaults, which failures are retried, jittered backoff, exact counts.

No I/O: attempts are plain coroutines that fail on cue. See notes/fault_tolerance.md, "Retries".
"""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest
from tenacity import RetryCallState

from app.payments.client import MalformedReply, payments_breaker, payments_retry_policy
from app.resilience.retry import AttemptsFailed, RetryPolicy, call_with_retries, is_transient_http_failure
from app.settings import Settings

REQUEST = httpx.Request("POST", "http://provider.invalid/v1/charges")
EDGE_READ_TIMEOUT_S = 5.0  # Nginx gives the app 5 s to answer (notes/nginx.md)
TINY = RetryPolicy(max_attempts=3, attempt_timeout_s=1.0, deadline_s=5.0, backoff_base_s=0.0001, backoff_max_s=0.001)


def status_error(status: int) -> httpx.HTTPStatusError:
    response = httpx.Response(status, request=REQUEST)
    return httpx.HTTPStatusError(f"answered {status}", request=REQUEST, response=response)


@pytest.fixture
def production_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [name for name in os.environ if name.startswith("REFSTACK_")]:
        monkeypatch.delenv(name)
    return Settings()


def test_production_defaults(production_settings: Settings) -> None:
    policy = payments_retry_policy(production_settings)
    assert policy == RetryPolicy(
        max_attempts=3, attempt_timeout_s=2.0, deadline_s=4.0, backoff_base_s=0.1, backoff_max_s=1.0
    )
    # The whole retried call must end before the edge gives up on the request, or the retries are wasted.
    assert policy.deadline_s < EDGE_READ_TIMEOUT_S
    breaker = payments_breaker(production_settings)
    assert (breaker.name, breaker.state, breaker.fail_counter) == ("payments", "closed", 0)
    assert (production_settings.payments_breaker_fail_max, production_settings.payments_breaker_reset_s) == (5, 10.0)
    assert production_settings.breaker_exchange_timeout_s == 0.075


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("refused", request=REQUEST),
        httpx.ConnectTimeout("connect", request=REQUEST),
        httpx.ReadTimeout("read", request=REQUEST),
        httpx.PoolTimeout("pool", request=REQUEST),
        httpx.ReadError("reset", request=REQUEST),
        httpx.RemoteProtocolError("closed mid-answer", request=REQUEST),
        status_error(500),
        status_error(502),
        status_error(503),
        status_error(504),
    ],
    ids=repr,
)
def test_timeouts_connection_errors_and_5xx_are_retried(error: Exception) -> None:
    assert is_transient_http_failure(error)


@pytest.mark.parametrize(
    "error",
    [
        status_error(400),
        status_error(402),
        status_error(404),
        status_error(409),
        status_error(422),
        status_error(429),
        httpx.LocalProtocolError("our own bad request", request=REQUEST),
        httpx.UnsupportedProtocol("ftp://", request=REQUEST),
        MalformedReply("a 201 whose body is not a charge"),
        ValueError("a bug"),
    ],
    ids=repr,
)
def test_4xx_declines_bugs_and_malformed_replies_are_not_retried(error: Exception) -> None:
    assert not is_transient_http_failure(error)


@pytest.mark.parametrize("attempt_number", range(1, 9))
def test_backoff_is_full_jitter_within_zero_and_the_capped_exponential(
    production_settings: Settings, attempt_number: int
) -> None:
    policy = payments_retry_policy(production_settings)
    state = RetryCallState(retry_object=policy.retrying(is_transient_http_failure), fn=None, args=(), kwargs={})
    state.attempt_number = attempt_number
    ceiling = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (attempt_number - 1))
    draws = [policy.backoff()(state) for _ in range(500)]
    assert all(0.0 <= draw <= ceiling for draw in draws)
    # Full jitter spreads over the whole window rather than clustering at its top (or at zero).
    assert min(draws) < ceiling * 0.1
    assert max(draws) > ceiling * 0.9


async def test_transient_failures_are_retried_and_the_attempts_counted() -> None:
    failures = [httpx.ConnectError("refused", request=REQUEST), status_error(503)]

    async def attempt(timeout_s: float) -> str:
        if failures:
            raise failures.pop(0)
        return "charged"

    attempted = await call_with_retries(TINY, attempt, retry_if=is_transient_http_failure)
    assert (attempted.value, attempted.attempts) == ("charged", 3)


async def test_a_permanent_error_is_not_retried() -> None:
    calls = 0

    async def attempt(timeout_s: float) -> str:
        nonlocal calls
        calls += 1
        raise status_error(409)

    with pytest.raises(AttemptsFailed) as failed:
        await call_with_retries(TINY, attempt, retry_if=is_transient_http_failure)
    assert (failed.value.attempts, calls) == (1, 1)
    assert isinstance(failed.value.last_error, httpx.HTTPStatusError)


async def test_transient_failures_stop_after_max_attempts_with_the_last_error() -> None:
    async def attempt(timeout_s: float) -> str:
        raise status_error(503)

    with pytest.raises(AttemptsFailed) as failed:
        await call_with_retries(TINY, attempt, retry_if=is_transient_http_failure)
    assert failed.value.attempts == TINY.max_attempts
    assert failed.value.__cause__ is failed.value.last_error


async def test_the_deadline_clips_attempt_timeouts_and_ends_the_call_in_time() -> None:
    policy = RetryPolicy(
        max_attempts=10, attempt_timeout_s=0.08, deadline_s=0.2, backoff_base_s=0.0001, backoff_max_s=0.0001
    )
    timeouts: list[float] = []

    async def attempt(timeout_s: float) -> str:
        timeouts.append(timeout_s)
        await asyncio.sleep(timeout_s)  # sleep-ok: stands in for a request that uses up its whole timeout
        raise httpx.ReadTimeout("no answer", request=REQUEST)

    began = time.monotonic()
    with pytest.raises(AttemptsFailed) as failed:
        await call_with_retries(policy, attempt, retry_if=is_transient_http_failure)
    elapsed = time.monotonic() - began

    assert failed.value.attempts == 3 == len(timeouts)
    assert timeouts[:2] == [0.08, 0.08]
    assert 0 < timeouts[2] < 0.08  # the third attempt only gets what is left of the 0.2 s
    assert 0.2 <= elapsed < 0.3
