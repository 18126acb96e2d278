"""The event page's two caches: the event itself (versioned, long-lived, written through on every change) and its
seat availability (unversioned, short-lived).

Why two: the event's ``ETag`` versions the organizer's fields, so ``If-Match`` on a PATCH must not break with
every sale; availability changes with every hold and booking, so it is its own resource whose staleness is bounded
by ``availability_cache_ttl_s`` alone, and nothing on the hold or booking path has to invalidate it. See
notes/redis.md, "Cache-aside".
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import TypeAdapter
from redis.asyncio import Redis

from app.cache.aside import CacheAside, CachePolicy, Codec, Observe
from app.services.events import EventRecord
from app.settings import Settings

EVENT_JSON: TypeAdapter[EventRecord] = TypeAdapter(EventRecord)

EVENT_CODEC: Codec[EventRecord] = Codec(
    encode=EVENT_JSON.dump_json, decode=EVENT_JSON.validate_json, version=lambda record: record.version
)
COUNT_CODEC: Codec[int] = Codec(encode=lambda count: str(count).encode(), decode=int, version=lambda _count: 0)


@dataclass(frozen=True)
class EventCaches:
    events: CacheAside[EventRecord]
    availability: CacheAside[int]


def build_event_caches(redis: Redis, settings: Settings, observe: Observe) -> EventCaches:
    def policy(ttl_s: float, missing_ttl_s: float) -> CachePolicy:
        return CachePolicy(
            ttl_s=ttl_s,
            missing_ttl_s=missing_ttl_s,
            redis_timeout_s=settings.cache_redis_timeout_s,
            lock_s=settings.db_command_timeout_s,  # a fill outlives no statement, so the lock outlives the fill
            wait_s=settings.cache_fill_wait_s,
        )

    event_policy = policy(settings.event_cache_ttl_s, settings.event_cache_missing_ttl_s)
    availability_policy = policy(settings.availability_cache_ttl_s, min(settings.availability_cache_ttl_s, 1.0))
    return EventCaches(
        events=CacheAside(redis, "event", event_policy, EVENT_CODEC, observe),
        availability=CacheAside(redis, "availability", availability_policy, COUNT_CODEC, observe),
    )
