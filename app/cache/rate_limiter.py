"""Per-account rate limits in Redis: one ``EVALSHA`` decides and records a request, atomically.

Why a Lua script: a read-then-write from the app (``GET`` the TAT, decide, ``SET`` it) lets two workers read the
same TAT and both admit a request the quota had room for only once; a script runs alone on the server, so the
decision and the write are one step, and one round trip. The clock is Redis' own ``TIME``, so workers and
instances with skewed clocks share one timeline. The steps are app/domain/rate_limit.py's ``gcra``, line for line.
``register_script`` sends ``EVALSHA`` and, on ``NOSCRIPT`` (a restarted or flushed Redis has forgotten the
script), loads it with ``SCRIPT LOAD`` and retries once. A connection error is retried once too (the connection a
restart left dead in the pool); any other error, and a second one, reaches the caller, which decides whether the
route fails open or closed. See notes/redis.md, "Rate limits in one round trip".
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.domain.rate_limit import RatePolicy, Verdict
from app.observability.metrics import RateLimitMetrics

KEY_PREFIX = "ratelimit"

# ARGV: the emission interval in ms, the quota. Returns {allowed, remaining, retry_after_ms, reset_ms}.
GCRA_SCRIPT = """
local interval = tonumber(ARGV[1])
local quota = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * quota
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', new_tat - now)
return {1, math.floor((now - allow_at) / interval), 0, new_tat - now}
"""


class RateLimiter:
    """GCRA limits for any policy, keyed ``ratelimit:<policy>:<subject>``; one per process, built in the lifespan.
    ``metrics`` is where its callers count each decision, including the ones Redis could not make."""

    def __init__(self, redis: Redis, metrics: RateLimitMetrics) -> None:
        self._script = redis.register_script(GCRA_SCRIPT)
        self.metrics = metrics

    @property
    def sha(self) -> str:
        return self._script.sha

    async def admit(self, policy: RatePolicy, subject: str) -> Verdict:
        """Count one request of ``subject`` under ``policy``; raises whatever Redis raises."""
        key = f"{KEY_PREFIX}:{policy.name}:{subject}"
        try:
            reply = await self._script(keys=[key], args=[policy.interval_ms, policy.quota])
        except RedisConnectionError:
            # A pooled connection that died with a restarted Redis fails once, and redis-py discards it; one more try
            # runs on a fresh connection. At worst the first try had run and one request counts twice.
            reply = await self._script(keys=[key], args=[policy.interval_ms, policy.quota])
        allowed, remaining, retry_after_ms, reset_ms = reply
        return Verdict(
            allowed=bool(allowed), remaining=int(remaining), retry_after_ms=int(retry_after_ms), reset_ms=int(reset_ms)
        )
