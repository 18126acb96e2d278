"""The event page's two caches: the event itself (versioned, long-lived, written through on every change) and its
seat availability (unversioned, short-lived); and the anonymous event list's pages.

Why two: the event's ``ETag`` versions the organizer's fields, so ``If-Match`` on a PATCH must not break with
every sale; availability changes with every hold and booking, so it is its own resource whose staleness is bounded
by ``availability_cache_ttl_s`` alone, and nothing on the hold or booking path has to invalidate it. A list page
carries seat counts too, so it lives as long as availability; its key also holds a generation that every create
and patch bumps, so a new or changed event retires every cached page at once instead of a page per key. Only
anonymous readers use it: a signed-in reader may be owed its own write (read-your-writes), which a page filled
by someone else from a lagging replica could hide.

Two levels: the event and the list pages (with the list's generation) are also held in each worker's memory for
``local_cache_ttl_s`` (app/cache/local.py), kept coherent by one invalidation channel (app/cache/invalidation.py)
whose ``listen`` the lifespan runs. Availability is not: its bound is its own short TTL, and a second level would
add to it. See notes/redis.md, "Cache-aside" and "Two levels: a worker's memory in front of Redis".
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter
from redis.asyncio import Redis

from app.cache.aside import CacheAside, CachePolicy, CacheUnavailableError, Codec, Generation, generation_cache
from app.cache.invalidation import InvalidationListener
from app.cache.local import LocalCache
from app.observability.metrics import CacheMetrics
from app.services.events import EventFilter, EventKey, EventListing, EventRecord
from app.settings import Settings

EVENT_JSON: TypeAdapter[EventRecord] = TypeAdapter(EventRecord)

EVENT_CODEC: Codec[EventRecord] = Codec(
    encode=EVENT_JSON.dump_json, decode=EVENT_JSON.validate_json, version=lambda record: record.version
)
COUNT_CODEC: Codec[int] = Codec(encode=lambda count: str(count).encode(), decode=int, version=lambda _count: 0)
PAGE_JSON: TypeAdapter[list[EventListing]] = TypeAdapter(list[EventListing])
PAGE_CODEC: Codec[list[EventListing]] = Codec(
    encode=PAGE_JSON.dump_json, decode=PAGE_JSON.validate_json, version=lambda _page: 0
)


@dataclass(frozen=True)
class EventLists:
    """Pages of the event list, one entry per query, all retired together by ``invalidate``."""

    pages: CacheAside[list[EventListing]]
    generation: Generation

    async def get(
        self, where: EventFilter, after: EventKey | None, fetch: int, load: Callable[[], Awaitable[list[EventListing]]]
    ) -> list[EventListing]:
        try:
            generation = await self.generation.current()
        except CacheUnavailableError:
            return await load()
        query = [where.city, where.starts_after, where.starts_before, after, fetch]
        page = await self.pages.get(f"{generation}:{json.dumps(query, default=str)}", load)
        return page if page is not None else []

    async def invalidate(self) -> None:
        """After a committed create or patch: every cached page is retired (fail soft)."""
        await self.generation.bump()


@dataclass(frozen=True)
class EventCaches:
    events: CacheAside[EventRecord]
    availability: CacheAside[int]
    lists: EventLists
    invalidations: InvalidationListener


def build_event_caches(redis: Redis, settings: Settings, metrics: CacheMetrics) -> EventCaches:
    def policy(ttl_s: float, missing_ttl_s: float) -> CachePolicy:
        return CachePolicy(
            ttl_s=ttl_s,
            missing_ttl_s=missing_ttl_s,
            redis_timeout_s=settings.cache_redis_timeout_s,
            lock_s=settings.db_command_timeout_s,  # a fill outlives no statement, so the lock outlives the fill
            wait_s=settings.cache_fill_wait_s,
        )

    locals_: dict[str, LocalCache[Any]] = {}

    def local(name: str) -> LocalCache[Any] | None:
        if not settings.local_cache_max_entries:
            return None
        held: LocalCache[Any] = LocalCache(
            name, max_entries=settings.local_cache_max_entries, ttl_s=settings.local_cache_ttl_s, metrics=metrics
        )
        locals_[name] = held
        return held

    event_policy = policy(settings.event_cache_ttl_s, settings.event_cache_missing_ttl_s)
    availability_policy = policy(settings.availability_cache_ttl_s, min(settings.availability_cache_ttl_s, 1.0))
    observe = metrics.observe
    return EventCaches(
        events=CacheAside(redis, "event", event_policy, EVENT_CODEC, observe, local("event")),
        availability=CacheAside(redis, "availability", availability_policy, COUNT_CODEC, observe),
        lists=EventLists(
            pages=CacheAside(redis, "event-list", availability_policy, PAGE_CODEC, observe, local("event-list")),
            generation=Generation(
                redis, "event-list", settings.cache_redis_timeout_s, local(generation_cache("event-list"))
            ),
        ),
        invalidations=InvalidationListener(redis, locals_, metrics, settings.redis_timeout_s),
    )
