"""The one Redis client of the process, with timeouts and an explicit no-retry policy.

Why ``retry=Retry(NoBackoff(), 0)``: redis-py 6+ retries timeouts by default (exponential backoff, three
retries), so with a one-second socket timeout a frozen Redis took about 15 s to fail a GET. Retries belong to the
caller, who knows whether the command is idempotent (see app/resilience). See notes/redis.md, "Timeouts".
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
