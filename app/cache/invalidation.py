"""Keeping every worker's in-process caches coherent: one pub/sub channel, a message per write, a flush per gap.

Why pub/sub and not RESP3 client-side caching with ``CLIENT TRACKING``: redis-py 8.1 (uv.lock) caches on the
client only in its synchronous client, and only against Redis 7.4 or later (it refuses older servers when it
connects); ours is 7.0 and asyncio (redis/redis-py#3916 asks for the async client). Tracking by hand would
invalidate on every write of a key, fills and refreshes included, where a message per committed change says
exactly what changed and at which version. Both lose messages the same way when a connection drops, so both need
the same flush. The comparison is in notes/redis.md, "Two levels: a worker's memory in front of Redis".

The rules:

- A write announces itself inside the script that stores it (app/cache/aside.py), so Redis never holds a new
  version that was not announced. A message is ``<cache>|<version>|<resource>``.
- Each worker keeps one subscription (``listen``, run by app/background.py's one runner: a session lasts until
  the connection fails, and the runner opens the next after ``cache_invalidation_retry_s``).
- Every (re)subscription and every lost subscription flushes every local cache: messages published while this
  worker was not listening are gone (at-most-once), so what it held may be stale. What a silently dead connection
  misses is covered by the local TTL alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.cache.local import LocalCache
from app.observability.metrics import CacheMetrics

log = structlog.get_logger(__name__)

CHANNEL = "refstack:cache:invalidations"


def message(cache: str, version: int, resource: str) -> str:
    return f"{cache}|{version}|{resource}"


def parse(data: bytes | str) -> tuple[str, int, str] | None:
    """``(cache, version, resource)`` of a message, or None for one this code did not write."""
    text = data.decode() if isinstance(data, bytes) else data
    cache, _, rest = text.partition("|")
    version, _, resource = rest.partition("|")
    return (cache, int(version), resource) if version.isdigit() else None


class InvalidationListener:
    """This worker's subscription to ``CHANNEL``, applying each message to the local cache it names."""

    def __init__(
        self, redis: Redis, caches: Mapping[str, LocalCache[Any]], metrics: CacheMetrics, timeout_s: float
    ) -> None:
        self._redis = redis
        self._caches = caches
        self._metrics = metrics
        self._timeout_s = timeout_s

    async def listen(self) -> None:
        """One subscription, until its connection fails (then return: the job runner starts the next one)."""
        pubsub = self._redis.pubsub()
        live = False
        try:
            async with asyncio.timeout(self._timeout_s):
                await pubsub.subscribe(CHANNEL)
            while True:
                # No read timeout: a timed read would only wake up to wait again. A broken connection ends the read
                # with an error, cancellation ends it at shutdown, and a silent one is what the local TTL covers.
                received = await pubsub.get_message(timeout=None)
                if received is None:
                    continue
                if received["type"] == "subscribe":  # from here on nothing is missed: drop what may have been
                    self._flush()
                    live = True
                    self._metrics.subscription(live=True)
                    self._metrics.invalidation("subscribed")
                elif received["type"] == "message":
                    self._apply(received["data"])
        except (RedisError, OSError, TimeoutError) as error:
            if live:
                log.warning("cache_invalidations_lost", error=repr(error))
        finally:
            if live:
                self._metrics.subscription(live=False)
                self._metrics.invalidation("lost")
                self._flush()  # whatever is published until the next subscription is lost to this worker
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(self._timeout_s):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _apply(self, data: bytes | str) -> None:
        parsed = parse(data)
        cache = self._caches.get(parsed[0]) if parsed is not None else None
        if parsed is None or cache is None:
            return
        self._metrics.invalidation("received")
        cache.invalidate(parsed[2], parsed[1])

    def _flush(self) -> None:
        for cache in self._caches.values():
            cache.flush()
