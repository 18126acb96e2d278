"""The first level's rules, without Redis: bounded LRU, the local TTL and the Redis entry's refresh point as its
lifetime, version floors left by invalidations, and flushes that no fill started earlier can undo.

A fake clock (two: monotonic for deadlines, wall for the Redis entry's epoch-seconds refresh point) drives time.
See notes/redis.md, "Two levels: a worker's memory in front of Redis".
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from app.cache.local import LocalCache
from app.observability.metrics import build_cache_metrics

TTL_S = 1.0
WALL_START = 1_800_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL_START + self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def local_cache(clock: FakeClock, registry: CollectorRegistry, max_entries: int = 3) -> LocalCache[str]:
    metrics = build_cache_metrics(registry)
    return LocalCache(
        "event", max_entries=max_entries, ttl_s=TTL_S, metrics=metrics, clock=clock.monotonic, wall_clock=clock.wall
    )


def counted(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {"cache": "event", **labels}) or 0.0


def test_the_least_recently_used_entry_goes_first_and_the_size_never_passes_the_bound(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    cache = local_cache(clock, registry, max_entries=3)
    for name in ("a", "b", "c"):
        cache.store(name, name.upper(), 1, fresh_until=None, since=cache.epoch)
    assert cache.get("a") is not None  # "a" is now the most recently used: "b" is the least
    cache.store("d", "D", 1, fresh_until=None, since=cache.epoch)
    assert (len(cache), cache.get("b")) == (3, None)
    assert [held.value for held in (cache.get("a"), cache.get("c"), cache.get("d")) if held is not None] == [
        "A",
        "C",
        "D",
    ]
    for n in range(100):
        cache.store(f"scan-{n}", "x", 1, fresh_until=None, since=cache.epoch)
    assert len(cache) == 3
    assert counted(registry, "cache_local_evictions_total", reason="lru") == 1 + 100
    assert counted(registry, "cache_local_entries") == 3


def test_an_entry_lives_the_local_ttl_or_until_its_redis_entry_wants_a_refresh_whichever_is_first(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    cache = local_cache(clock, registry)
    cache.store("long", "L", 1, fresh_until=clock.wall() + 30.0, since=cache.epoch)
    cache.store("short", "S", 1, fresh_until=clock.wall() + 0.25, since=cache.epoch)
    cache.store("due", "D", 1, fresh_until=clock.wall() - 0.01, since=cache.epoch)  # already due: not held
    clock.now += 0.24
    assert (cache.get("short") is not None, cache.get("due")) == (True, None)
    clock.now += 0.02
    assert cache.get("short") is None
    clock.now += TTL_S - 0.27
    assert cache.get("long") is not None
    clock.now += 0.02
    assert cache.get("long") is None
    assert counted(registry, "cache_local_evictions_total", reason="expired") == 2


def test_an_invalidation_drops_older_versions_keeps_newer_and_refuses_a_late_fill_of_the_old_one(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    cache = local_cache(clock, registry)
    cache.store("e", "v1", 1, fresh_until=None, since=cache.epoch)
    cache.store("own", "v2", 2, fresh_until=None, since=cache.epoch)  # the writer's worker holds what it wrote
    cache.invalidate("e", 2)
    cache.invalidate("own", 2)
    assert cache.get("e") is None
    held = cache.get("own")
    assert held is not None
    assert held.value == "v2"
    cache.store("e", "v1", 1, fresh_until=None, since=cache.epoch)  # a fill that read Redis before the write
    assert cache.get("e") is None
    cache.store("e", "v2", 2, fresh_until=None, since=cache.epoch)
    held = cache.get("e")
    assert held is not None
    assert held.value == "v2"
    cache.invalidate("never-read", 5)  # a floor even for what this worker never held
    cache.store("never-read", "v4", 4, fresh_until=None, since=cache.epoch)
    assert cache.get("never-read") is None
    assert counted(registry, "cache_local_evictions_total", reason="invalidated") == 1


def test_a_flush_empties_the_cache_and_no_fill_begun_before_it_can_store(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    cache = local_cache(clock, registry)
    cache.store("a", "A", 1, fresh_until=None, since=cache.epoch)
    began = cache.epoch  # a fill reads Redis ...
    cache.flush()  # ... the subscription is lost (or made again) meanwhile ...
    cache.store("b", "B", 1, fresh_until=None, since=began)  # ... and its result is not trusted
    assert (len(cache), cache.get("a"), cache.get("b")) == (0, None, None)
    cache.store("b", "B", 1, fresh_until=None, since=cache.epoch)
    assert cache.get("b") is not None
    assert counted(registry, "cache_local_evictions_total", reason="flushed") == 1
    assert counted(registry, "cache_local_lookups_total", outcome="hit") == 1
    assert counted(registry, "cache_local_lookups_total", outcome="miss") == 2


def test_a_missing_value_is_held_as_missing(clock: FakeClock, registry: CollectorRegistry) -> None:
    cache = local_cache(clock, registry)
    cache.store("gone", None, 0, fresh_until=None, since=cache.epoch)
    held = cache.get("gone")
    assert held is not None
    assert held.value is None


def test_a_cache_of_no_entries_is_refused(clock: FakeClock, registry: CollectorRegistry) -> None:
    with pytest.raises(ValueError, match="at least one entry"):
        local_cache(clock, registry, max_entries=0)
