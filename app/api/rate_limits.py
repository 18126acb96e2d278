"""Per-account rate limits on the routes a bot hammers: ``dependencies=[Depends(HOLDS_LIMIT)]`` on the route.

Why per account, behind Nginx's per-IP limits: one account spread over many addresses passes every per-IP limit,
and one address (a NAT, an office) may carry many honest accounts. A request beyond the quota is a 429
``too-many-requests`` problem (the kind Nginx's own 429 has) with ``Retry-After``, the IETF ``RateLimit-Policy``
and ``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers-11: ``"holds";q=120;w=60`` and
``"holds";r=0;t=1``) and ``violated-policies``; an admitted one carries both fields too, where the route lets
FastAPI merge headers. When Redis cannot answer within ``rate_limit_timeout_s``, each route fails its own way:
placing a hold fails open (a hold is already capped per account in PostgreSQL, and a Redis outage must not stop a
sale), booking fails closed with a retryable 503 (each attempt charges a card through a provider that rate-limits
the whole merchant, so card testing must never run unmetered; the hold outlives a short outage). The 429 is
declared in the OpenAPI document by app/api/openapi.py, which finds these dependencies on the routes. Every
decision is counted at ``/metrics`` as ``rate_limit_decisions_total{policy, outcome}``, so a limiter that fails
open is seen, not only logged.
See notes/redis.md, "Rate limits in one round trip".
"""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import Callable

import structlog
from fastapi import Response
from redis.exceptions import RedisError

from app.api.deps import CurrentUser, StateDep
from app.api.problems import Problem
from app.domain.rate_limit import RatePolicy, Verdict
from app.settings import Settings

log = structlog.get_logger("refstack.rate_limits")


class WhenRedisIsDown(enum.Enum):
    FAIL_OPEN = "open"
    FAIL_CLOSED = "closed"


def whole_seconds(ms: int) -> int:
    """Header seconds: rounded up, so a client that waits them is never early, and never 0 for a wait."""
    return max(1, math.ceil(ms / 1000))


def ratelimit_fields(policy: RatePolicy, verdict: Verdict) -> dict[str, str]:
    """``RateLimit-Policy`` and ``RateLimit`` for one verdict; ``t`` is when the whole quota is back (on a 429, when
    the next request fits, which ``Retry-After`` repeats)."""
    t_ms = verdict.reset_ms if verdict.allowed else verdict.retry_after_ms
    return {
        "RateLimit-Policy": f'"{policy.name}";q={policy.quota};w={policy.window_s}',
        "RateLimit": f'"{policy.name}";r={verdict.remaining};t={whole_seconds(t_ms)}',
    }


class RateLimit:
    """A route dependency: counts the caller's request under its policy and refuses it past the quota."""

    def __init__(self, name: str, quota: Callable[[Settings], int], when_redis_is_down: WhenRedisIsDown) -> None:
        self.name = name
        self.quota = quota
        self.when_redis_is_down = when_redis_is_down

    def policy(self, settings: Settings) -> RatePolicy:
        return RatePolicy(self.name, self.quota(settings), settings.rate_limit_window_s)

    async def __call__(self, state: StateDep, user: CurrentUser, response: Response) -> None:
        settings = state["settings"]
        policy = self.policy(settings)
        limiter = state["rate_limiter"]
        try:
            async with asyncio.timeout(settings.rate_limit_timeout_s):
                verdict = await limiter.admit(policy, str(user.user_id))
        except (RedisError, TimeoutError, OSError) as error:
            limiter.metrics.count(policy.name, f"failed-{self.when_redis_is_down.value}")
            log.warning(
                "rate_limit_unavailable", policy=policy.name, fails=self.when_redis_is_down.value, error=repr(error)
            )
            if self.when_redis_is_down is WhenRedisIsDown.FAIL_CLOSED:
                raise Problem(
                    503,
                    kind="rate-limit-unavailable",
                    detail="The request cannot be metered right now; retry shortly.",
                    headers={"Retry-After": "1"},
                ) from None
            return
        fields = ratelimit_fields(policy, verdict)
        limiter.metrics.count(policy.name, "admitted" if verdict.allowed else "limited")
        if not verdict.allowed:
            raise Problem(
                429,
                kind="too-many-requests",
                detail=f"This account sent more than {policy.quota} of these requests in {policy.window_s} s; "
                "retry after the time Retry-After says.",
                headers={**fields, "Retry-After": str(whole_seconds(verdict.retry_after_ms))},
                extensions={"violated-policies": [policy.name]},
            )
        response.headers.update(fields)


HOLDS_LIMIT = RateLimit("holds", lambda settings: settings.rate_limit_holds, WhenRedisIsDown.FAIL_OPEN)
BOOKINGS_LIMIT = RateLimit("bookings", lambda settings: settings.rate_limit_bookings, WhenRedisIsDown.FAIL_CLOSED)
