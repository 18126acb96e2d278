"""The first level of a two-level cache: a bounded LRU in this worker's memory, in front of Redis, one per named cache.

Why each part (numbers and trade-offs in notes/redis.md, "Two levels: a worker's memory in front of Redis"):

- **Bounded**: at most ``max_entries`` per cache, least recently used out first, so a scan of cold ids costs a
  fixed amount of memory and never grows a worker.
- **Short-lived**: an entry lives at most ``ttl_s``, and never past the moment its Redis entry asks for a refresh
  (``fresh_until``), so this level adds no staleness of its own to what Redis would serve. The TTL is also the
  backstop for every invalidation message that never arrives (pub/sub is at-most-once).
- **Versioned**: an invalidation (app/cache/invalidation.py) names the version that replaced the entry; an entry
  at that version or newer stays, an older one becomes a tombstone holding that version as a floor, so a fill that
  read Redis before the write and stores after the message cannot bring the old version back.
- **Epochs**: ``flush`` (the subscription was lost or made again: messages may be missing) empties everything and
  starts a new epoch; a fill stores only into the epoch it started in, so nothing read before a flush survives it.

No IO here: the clock is a parameter, so the rules are unit-tested without Redis (tests/unit/test_local_cache.py).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from app.observability.metrics import CacheMetrics

T = TypeVar("T")


@dataclass(frozen=True)
class Held(Generic[T]):
    """A value this worker holds (``None``: known missing)."""

    value: T | None


@dataclass(frozen=True)
class _Slot(Generic[T]):
    held: Held[T] | None  # None: a tombstone, the floor an invalidation left
    version: int
    deadline: float  # on ``clock``


class LocalCache(Generic[T]):
    """One named cache's entries in this worker, keyed by the resource (the Redis entry's key without its prefix)."""

    def __init__(
        self,
        name: str,
        *,
        max_entries: int,
        ttl_s: float,
        metrics: CacheMetrics,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1:
            raise ValueError("a local cache holds at least one entry; build none to turn the level off")
        self.name = name
        self.epoch = 0
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._metrics = metrics
        self._clock = clock
        self._wall_clock = wall_clock
        self._slots: OrderedDict[str, _Slot[T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._slots)

    def get(self, resource: str) -> Held[T] | None:
        """The value held for ``resource``, or None (absent, expired or invalidated): then ask Redis."""
        slot = self._slots.get(resource)
        if slot is not None and slot.deadline <= self._clock():
            self._drop(resource, "expired")
            slot = None
        if slot is None or slot.held is None:
            self._metrics.local_lookup(self.name, "miss")
            return None
        self._slots.move_to_end(resource)
        self._metrics.local_lookup(self.name, "hit")
        return slot.held

    def store(self, resource: str, value: T | None, version: int, *, fresh_until: float | None, since: int) -> None:
        """Hold ``value`` unless a flush came after epoch ``since``, a newer version is held (or was announced), or
        its Redis entry is already due for a refresh (``fresh_until``, epoch seconds; None: no Redis entry)."""
        if since != self.epoch:
            return
        now = self._clock()
        lifetime = self._ttl_s if fresh_until is None else min(self._ttl_s, fresh_until - self._wall_clock())
        if lifetime <= 0:
            return
        current = self._slots.get(resource)
        if current is not None and current.deadline > now and current.version > version:
            return
        self._put(resource, _Slot(Held(value), version, now + lifetime))

    def invalidate(self, resource: str, version: int) -> None:
        """Version ``version`` replaced this resource elsewhere: drop anything older and keep the floor for a TTL."""
        current = self._slots.get(resource)
        if current is not None and current.version >= version and current.deadline > self._clock():
            return
        if current is not None and current.held is not None:
            self._metrics.local_evicted(self.name, "invalidated")
        self._put(resource, _Slot(None, version, self._clock() + self._ttl_s))

    def discard(self, resource: str) -> None:
        """Forget ``resource`` (this worker learnt that Redis holds something newer than what it would store)."""
        if resource in self._slots:
            self._drop(resource, "invalidated")

    def flush(self) -> None:
        """Forget everything and start a new epoch: messages may have been missed, so nothing held can be trusted."""
        if self._slots:
            self._metrics.local_evicted(self.name, "flushed", len(self._slots))
        self._slots.clear()
        self.epoch += 1
        self._metrics.local_entries(self.name, 0)

    def _put(self, resource: str, slot: _Slot[T]) -> None:
        """Place ``slot`` as the most recently used; past ``max_entries``, the least recently used goes."""
        self._slots[resource] = slot
        self._slots.move_to_end(resource)
        while len(self._slots) > self._max_entries:
            self._slots.popitem(last=False)
            self._metrics.local_evicted(self.name, "lru")
        self._metrics.local_entries(self.name, len(self._slots))

    def _drop(self, resource: str, reason: str) -> None:
        slot = self._slots.pop(resource)
        if slot.held is not None:
            self._metrics.local_evicted(self.name, reason)
        self._metrics.local_entries(self.name, len(self._slots))
