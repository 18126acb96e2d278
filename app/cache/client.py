"""The one Redis client of the process, with timeouts and an explicit no-retry policy.

Why ``retry=Retry(NoBackoff(), 0)``: a client built with ``Redis(host=...)`` retries timeouts by default (3
retries with backoff in redis-py 6.0-8.0; 10 in 8.1, the version uv.lock pins: a GET on a frozen Redis failed
after ~15 s, not 1 s), while ``from_url`` connections happen to default to none. Saying it explicitly keeps the
bound whichever way a client is built and whatever a later release changes. Retries belong to the caller, who
knows whether the command is idempotent. See notes/redis.md, "Timeouts".
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.settings import Settings


def open_redis(settings: Settings) -> Redis:
    """A pooled client; it connects on first use, so building it never fails on a Redis that is down."""
    return Redis.from_url(
        str(settings.redis_url),
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
