"""``PaymentsClient``: charges a card at the external provider, with timeouts, retries and a circuit breaker, and
looks a charge up by its idempotency key (for reconciling unknown outcomes).

Why it may retry a charge at all: every request carries the caller's idempotency key, and the provider answers a
repeated key with the first answer instead of charging again. A timed-out charge may have happened; retrying with
the same key either makes it or replays it, so there is exactly one charge either way. Without the key, retrying a
POST that moves money would be a double-charge generator.

The layers, outside in: the circuit breaker (one failure per call whose retries are exhausted; one circuit for all
workers when its state is shared through Redis, see notes/redis.md), then the retry loop
(timeouts, connection errors and 5xx only; never 4xx or 402), then one HTTP attempt with its own timeout. See
notes/fault_tolerance.md, "Retries", "Idempotency keys", "Circuit breaker" and "Reconciling unknown outcomes".
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError
from redis.asyncio import Redis

from app.payments.outcomes import ChargeResult, PaymentRequestRejected, PaymentUnavailable
from app.payments.wire import ChargeRequest, ProviderCharge, ProviderNotFound
from app.resilience.breaker import AsyncCircuitBreaker, CircuitOpen
from app.resilience.retry import Attempted, AttemptsFailed, RetryPolicy, call_with_retries, is_transient_http_failure
from app.resilience.shared_circuit import RedisCircuitState
from app.settings import Settings

CHARGES_PATH = "/v1/charges"
REPLAYED_HEADER = "Idempotent-Replayed"
T = TypeVar("T")


class MalformedReply(Exception):
    """The provider answered, but not with a charge for this request (never retried: a replay repeats it)."""


class ReplyTooLarge(MalformedReply):
    """The reply body ran past ``max_reply_bytes``; reading stopped there (a charge is a few hundred bytes)."""


def payments_retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.payments_max_attempts,
        attempt_timeout_s=settings.payments_timeout_s,
        deadline_s=settings.payments_deadline_s,
        backoff_base_s=settings.payments_backoff_base_s,
        backoff_max_s=settings.payments_backoff_max_s,
    )


def payments_breaker(settings: Settings, redis: Redis | None = None) -> AsyncCircuitBreaker:
    """One circuit for every worker that shares ``redis`` (this process's own without it); a rejected request is our
    bug, not the provider's ill health, so it never trips it."""
    name = "payments"
    return AsyncCircuitBreaker(
        name=name,
        fail_max=settings.payments_breaker_fail_max,
        reset_timeout_s=settings.payments_breaker_reset_s,
        not_failures=[PaymentRequestRejected],
        shared=(
            RedisCircuitState(redis, name, timeout_s=settings.breaker_exchange_timeout_s) if redis is not None else None
        ),
    )


def open_payments_client(settings: Settings, redis: Redis | None = None) -> PaymentsClient:
    """One pooled HTTP client and one breaker per process (its state shared through ``redis`` when given); nothing
    connects until the first charge."""
    http = httpx.AsyncClient(base_url=str(settings.payments_url), timeout=settings.payments_timeout_s)
    return PaymentsClient(
        http,
        policy=payments_retry_policy(settings),
        breaker=payments_breaker(settings, redis),
        max_reply_bytes=settings.payments_max_reply_bytes,
    )


class PaymentsClient:
    """Charges cards and finds charges; a decline is a ``ChargeResult``, trouble is ``PaymentUnavailable``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        policy: RetryPolicy,
        breaker: AsyncCircuitBreaker,
        max_reply_bytes: int,
    ) -> None:
        self.policy = policy
        self.breaker = breaker
        self._http = http
        self._max_reply_bytes = max_reply_bytes

    async def aclose(self) -> None:
        await self._http.aclose()

    async def charge(
        self,
        *,
        amount_cents: int,
        currency: str,
        card_token: str,
        idempotency_key: str,
        description: str | None = None,
    ) -> ChargeResult:
        """Charge once per ``idempotency_key``, however often this is called or retried with it.

        Raises ``PaymentUnavailable`` when the circuit is open (``retry_after_s`` is the time it stays open, and
        ``attempts`` is 0) or when the retries ran out on timeouts, connection errors, 5xx or a malformed answer.
        """
        request = ChargeRequest(
            amount_cents=amount_cents, currency=currency.upper(), card_token=card_token, description=description
        )
        try:
            return await self.breaker.call(functools.partial(self._charge_with_retries, request, idempotency_key))
        except CircuitOpen as open_circuit:
            raise PaymentUnavailable(
                retry_after_s=whole_seconds(open_circuit.retry_after_s), attempts=0, reason="circuit open"
            ) from None

    async def find_charge(self, idempotency_key: str) -> ProviderCharge | None:
        """The charge the provider made under ``idempotency_key``, or None when it says there is none.

        Not behind the breaker, on purpose: the breaker protects request handlers from waiting on a sick provider,
        and its counts are about charges. A lookup is made by a background job that is already rate-limited (one
        batch per round, and a round stops at its first unanswered lookup), so fail-fast buys nothing, while a
        lookup endpoint that fails on its own would otherwise open the circuit for every customer's charge, and a
        lookup could take the half-open window's single trial. It gets the same retries (a GET is safe to
        repeat), per-attempt bound, size cap and validation as a charge. Raises ``PaymentUnavailable`` (never
        with ``attempts == 0``) or ``PaymentRequestRejected``."""
        attempted = await self._with_retries(functools.partial(self._lookup_attempt, idempotency_key))
        return attempted.value

    async def _charge_with_retries(self, request: ChargeRequest, idempotency_key: str) -> ChargeResult:
        attempted = await self._with_retries(functools.partial(self._charge_attempt, request, idempotency_key))
        charge, replayed = attempted.value
        return ChargeResult(
            status=charge.status,
            charge_id=charge.id,
            attempts=attempted.attempts,
            decline_code=charge.decline_code,
            replayed=replayed,
        )

    async def _with_retries(self, attempt: Callable[[float], Awaitable[T]]) -> Attempted[T]:
        try:
            return await call_with_retries(self.policy, attempt, retry_if=is_transient_http_failure)
        except AttemptsFailed as failed:
            raise self._give_up(failed) from failed.last_error

    async def _charge_attempt(
        self, request: ChargeRequest, idempotency_key: str, timeout_s: float
    ) -> tuple[ProviderCharge, bool]:
        """One POST; 5xx and 4xx surface as ``httpx.HTTPStatusError`` for the retry predicate to judge."""
        response = await self._bounded_exchange(
            "POST",
            timeout_s,
            json=request.model_dump(exclude_none=True),
            headers={"Idempotency-Key": idempotency_key},
        )
        charge = parse_charge(response, expected=(201, 402))
        if not charge.answers(request, response.status_code):
            raise MalformedReply(f"a {response.status_code} carrying a charge that does not match the request")
        return charge, response.headers.get(REPLAYED_HEADER) == "true"

    async def _lookup_attempt(self, idempotency_key: str, timeout_s: float) -> ProviderCharge | None:
        """One GET by key. A 404 counts as "no such charge" only with the provider's own not-found problem body:
        a proxy's or a misrouted 404 read as "not charged" would give back seats somebody has paid for."""
        response = await self._bounded_exchange("GET", timeout_s, params={"idempotency_key": idempotency_key})
        if response.status_code == 404:
            try:
                ProviderNotFound.model_validate_json(response.content)
            except ValidationError as invalid:
                raise MalformedReply("a 404 that is not the provider's no-such-charge answer") from invalid
            return None
        return parse_charge(response, expected=(200,))

    async def _bounded_exchange(self, method: str, timeout_s: float, **request: Any) -> httpx.Response:
        """One request to the charges resource, its reply read whole within ``timeout_s`` and ``max_reply_bytes``.

        httpx's timeouts bound each read, not their sum, so a provider dripping a byte at a time would otherwise
        hold the caller open; running out counts as a timeout, which is retried (with the same key for a charge)."""
        try:
            async with asyncio.timeout(timeout_s):
                async with self._http.stream(method, CHARGES_PATH, timeout=timeout_s, **request) as streamed:
                    body = await read_at_most(streamed, self._max_reply_bytes)
                    replayed = streamed.headers.get(REPLAYED_HEADER)
                    return httpx.Response(
                        streamed.status_code,
                        headers={REPLAYED_HEADER: replayed} if replayed is not None else {},
                        content=body,
                        request=streamed.request,
                    )
        except TimeoutError:
            raise httpx.ReadTimeout(f"no complete reply within {timeout_s} s") from None

    def _give_up(self, failed: AttemptsFailed) -> PaymentUnavailable | PaymentRequestRejected:
        error = failed.last_error
        if isinstance(error, httpx.HTTPStatusError) and 400 <= error.response.status_code < 500:
            return PaymentRequestRejected(status=error.response.status_code, detail=error.response.text[:500])
        return PaymentUnavailable(
            retry_after_s=whole_seconds(self.policy.backoff_max_s), attempts=failed.attempts, reason=describe(error)
        )


def parse_charge(response: httpx.Response, *, expected: tuple[int, ...]) -> ProviderCharge:
    """The charge in a reply with one of the ``expected`` statuses; other 4xx/5xx raise ``HTTPStatusError``."""
    if response.status_code not in expected:
        response.raise_for_status()
        raise MalformedReply(f"unexpected status {response.status_code}")
    try:
        return ProviderCharge.model_validate_json(response.content)
    except ValidationError as invalid:
        raise MalformedReply(f"a {response.status_code} whose body is not a charge") from invalid


async def read_at_most(response: httpx.Response, limit: int) -> bytes:
    """The (decoded) body if it fits in ``limit`` bytes; ``ReplyTooLarge`` as soon as it cannot."""
    announced = response.headers.get("Content-Length", "")
    if announced.isdigit() and int(announced) > limit:
        raise ReplyTooLarge(f"the reply announces {announced} bytes; at most {limit} are read")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise ReplyTooLarge(f"the reply is longer than {limit} bytes")
    return bytes(body)


def whole_seconds(seconds: float) -> int:
    """A ``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(seconds))


def describe(error: Exception) -> str:
    """A short reason for logs and problem details: the error's class, and its message when it has one."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
