"""Cache-aside over Redis, generic over a loader: TTL with jitter, negative entries, a stampede guard, refresh-ahead.

Why each part (numbers and trade-offs in notes/redis.md, "Cache-aside"):

- **Jitter**: each entry lives ``ttl_s`` ± 10 %, so keys filled together (a cold start) do not expire together.
- **Negative entries**: a loader answering ``None`` ("no such thing") is cached for ``missing_ttl_s``, so ids that
  name nothing cannot be replayed straight into the database.
- **Versions**: every entry carries its value's version (0 for a missing one) and one Lua script stores an entry
  only if the stored one is not newer. A reader that loaded from a lagging replica can then never overwrite the
  newer version a writer just put, and a write-through (``put``) after a commit is never undone by a slow fill.
- **Stampede guard, two layers**: within a worker, concurrent lookups of one key share one task (coalescing: 200
  requests, one Redis GET); across workers and instances, a miss takes a per-key lock (``SET NX PX``) and only the
  winner runs the loader; the others poll the entry every ``poll_s`` for at most ``wait_s``, then load themselves
  (a winner that died must not stall every reader). The store script releases the lock by compare-and-delete.
- **Refresh-ahead**: a hit in the last ``REFRESH_AHEAD`` of an entry's life takes the same lock and reloads, while
  every other reader keeps getting the current entry, so a key read at least once in that window never expires.
  A reload that fails (the database down) serves the entry it meant to replace, which is still within its TTL.
- **Redis failing fails soft**: every command runs under ``redis_timeout_s`` (short: the client's own 1 s is for
  readiness); a failed read or lock means "load from the database and skip the cache" and a failed store is
  ignored, so a paused, stopped or full Redis costs a request at most one such timeout.

- **A first level in the worker** (optional, app/cache/local.py): a hit there costs no Redis round trip. A fill
  stores there what it read or loaded, for at most the local TTL and never past the Redis entry's refresh point; a
  write-through (``put``) stores there too, so the writer's own worker sees the write at once, and announces the
  new version on the invalidation channel in the same script that stores it (app/cache/invalidation.py), so every
  other worker drops its older copy. A caller that may be owed its own write passes ``local=False``.

``Generation`` is a counter kept beside a cache whose value goes into its keys: bumping it retires every entry at
once, for caches (a list's pages) whose keys a write cannot name. It has a first level too: the number itself,
announced by every bump.

Every request that reaches Redis is reported to ``observe(cache, outcome)`` once (``OUTCOMES``), and every failed
store as ``store-failed``: ``cache_requests_total`` at ``/metrics``; the first level counts its own hits and misses
(``cache_local_lookups_total``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.cache.invalidation import CHANNEL, message
from app.cache.local import Held, LocalCache

T = TypeVar("T")
R = TypeVar("R")

JITTER = 0.1
REFRESH_AHEAD = 0.2
PRESENT, MISSING = b"+", b"-"
GENERATION = "current"  # the one resource of a generation's local cache
OUTCOMES = ("hit", "coalesced", "miss", "refresh", "refresh-failed", "waited", "gave-up", "redis-down")
Observe = Callable[[str, str], None]

# KEYS: entry, lock. ARGV: version, entry, ttl ms, lock token ('' when the caller holds none), invalidation channel
# and message ('' when the store announces nothing: a fill). Store unless the stored entry is newer, and announce
# what was stored; release the caller's lock only if it still holds it.
STORE_UNLESS_NEWER = """
local current = redis.call('GET', KEYS[1])
local stored = 0
if (not current) or tonumber(string.match(current, '^(%d+):')) <= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  stored = 1
  if ARGV[5] ~= '' then
    redis.call('PUBLISH', ARGV[5], ARGV[6])
  end
end
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) == ARGV[4] then
  redis.call('DEL', KEYS[2])
end
return stored
"""
# KEYS: generation. ARGV: invalidation channel, the message's cache, its resource. Bump and announce the new number.
BUMP_AND_ANNOUNCE = """
local generation = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. '|' .. generation .. '|' .. ARGV[3])
return generation
"""


class CacheUnavailableError(Exception):
    """Redis did not answer within the cache's bound (paused, stopped, refusing writes): skip the cache."""


@dataclass(frozen=True)
class CachePolicy:
    ttl_s: float
    missing_ttl_s: float
    redis_timeout_s: float
    lock_s: float
    wait_s: float
    poll_s: float = 0.01


@dataclass(frozen=True)
class Codec(Generic[T]):
    """How a value becomes bytes and back, and its version (what the store script compares)."""

    encode: Callable[[T], bytes]
    decode: Callable[[bytes], T]
    version: Callable[[T], int]


@dataclass(frozen=True)
class Entry(Generic[T]):
    value: T | None
    version: int
    refresh_at: float  # epoch seconds after which one reader reloads ahead of expiry


class Generation:
    """A cache's generation number in Redis: part of every key, so ``bump`` retires all its entries at once. With a
    first level (``local``, named ``generation_cache(name)``), a worker asks Redis for the number only when the one
    it holds expired or a bump was announced."""

    def __init__(self, redis: Redis, name: str, timeout_s: float, local: LocalCache[int] | None = None) -> None:
        self._redis = redis
        self._key = f"refstack:cache:generation:{name}"
        self._announced_as = generation_cache(name)
        self._timeout_s = timeout_s
        self._local = local
        self._bump = redis.register_script(BUMP_AND_ANNOUNCE)

    async def current(self) -> int:
        """The generation now (0 before the first bump); ``CacheUnavailableError`` when Redis fails."""
        held = self._local.get(GENERATION) if self._local is not None else None
        if held is not None and held.value is not None:
            return held.value
        since = self._local.epoch if self._local is not None else 0
        number = int(await _bounded(self._redis.get(self._key), self._timeout_s) or 0)
        self._hold(number, since)
        return number

    async def bump(self) -> None:
        """Retire every entry of this generation and announce it; never fails (an entry then lives out its short
        TTL, and a worker's copy of the number its local TTL)."""
        since = self._local.epoch if self._local is not None else 0
        with contextlib.suppress(CacheUnavailableError):
            args = [CHANNEL, self._announced_as, GENERATION]
            self._hold(int(await _bounded(self._bump(keys=[self._key], args=args), self._timeout_s)), since)

    def _hold(self, number: int, since: int) -> None:
        if self._local is not None:
            self._local.store(GENERATION, number, number, fresh_until=None, since=since)


def generation_cache(name: str) -> str:
    """The name under which the generation of cache ``name`` is held in a worker and announced."""
    return f"{name}-generation"


class CacheAside(Generic[T]):
    """One named cache of ``T`` values (``None``: known missing) in one Redis, keyed by the caller, with an optional
    first level in this worker (``local``, named like the cache)."""

    def __init__(
        self,
        redis: Redis,
        name: str,
        policy: CachePolicy,
        codec: Codec[T],
        observe: Observe,
        local: LocalCache[T] | None = None,
    ) -> None:
        self.name = name
        self._observe = observe
        self._redis = redis
        self._policy = policy
        self._codec = codec
        self._local = local
        self._store = redis.register_script(STORE_UNLESS_NEWER)
        self._inflight: dict[str, asyncio.Task[T | None]] = {}

    def key(self, resource: str) -> str:
        """The entry's key; the braces make the entry and its lock one hash slot (one node in a Redis Cluster)."""
        return f"refstack:cache:{{{self.name}:{resource}}}"

    async def get(self, resource: str, load: Callable[[], Awaitable[T | None]], *, local: bool = True) -> T | None:
        """The value held by this worker, else the cached value, else ``load()``'s (then stored); concurrent calls
        in this worker share one lookup. ``local=False``: skip this worker's copy (a caller owed its own write)."""
        if local:
            held = self.held(resource)
            if held is not None:
                return held.value
        key = self.key(resource)
        lookup = self._inflight.get(key)
        if lookup is None:
            lookup = asyncio.create_task(self._lookup(resource, load))
            self._inflight[key] = lookup
            lookup.add_done_callback(lambda done: self._finished(key, done))
        else:
            self._observe(self.name, "coalesced")
        return await asyncio.shield(lookup)

    def held(self, resource: str) -> Held[T] | None:
        """This worker's own copy (``Held(None)``: known missing), or None; no Redis call, so a caller that cannot
        wait may ask (app/api/v1/event_reads.py)."""
        return None if self._local is None else self._local.get(resource)

    async def put(self, resource: str, value: T | None) -> None:
        """Write-through after a committed write: store ``value`` unless a newer version is cached, announce it to
        every worker, and hold it in this one; never fails (a Redis that did not answer announced nothing: the
        other workers' copies then live out their local TTL)."""
        version = self._version(value)
        since = self._local.epoch if self._local is not None else 0
        announce = message(self.name, version, resource)
        stored, refresh_at = await self._save(self.key(resource), value, token="", announce=announce)
        if self._local is None:
            return
        if stored is False:  # Redis holds a newer version than this one: this worker must not hold the older
            self._local.discard(resource)
        else:
            self._local.store(resource, value, version, fresh_until=refresh_at, since=since)

    async def peek(self, resource: str) -> Entry[T] | None:
        """The stored entry as it is, with no loading (raises ``CacheUnavailableError`` when Redis fails)."""
        raw = await self._call(self._redis.get(self.key(resource)))
        return None if raw is None else self._decode(raw)

    def _finished(self, key: str, done: asyncio.Task[T | None]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]
        if not done.cancelled():
            done.exception()  # retrieved, so a failure every waiter already saw is not reported again

    async def _lookup(self, resource: str, load: Callable[[], Awaitable[T | None]]) -> T | None:
        since = self._local.epoch if self._local is not None else 0
        value, fresh_until = await self._shared(self.key(resource), load)
        if self._local is not None:
            self._local.store(resource, value, self._version(value), fresh_until=fresh_until, since=since)
        return value

    async def _shared(self, key: str, load: Callable[[], Awaitable[T | None]]) -> tuple[T | None, float | None]:
        """The value from Redis or the loader, and until when (epoch seconds) it may be served without asking Redis
        again: its entry's refresh point (None: Redis did not answer, so no entry says)."""
        try:
            raw = await self._call(self._redis.get(key))
            if raw is not None:
                entry = self._decode(raw)
                token = None if time.time() < entry.refresh_at else await self._lock(key)
                if token is None:
                    return self._seen("hit", entry.value), entry.refresh_at
                return await self._refresh(key, load, token, entry)
            token = await self._lock(key)
            if token is not None:
                value, refresh_at = await self._fill(key, load, token)
                return self._seen("miss", value), refresh_at
            waited = await self._wait_for_entry(key)
        except CacheUnavailableError:
            return self._seen("redis-down", await load()), None
        if waited is None:
            value, refresh_at = await self._fill(key, load, "")
            return self._seen("gave-up", value), refresh_at
        return self._seen("waited", waited.value), waited.refresh_at

    async def _refresh(
        self, key: str, load: Callable[[], Awaitable[T | None]], token: str, entry: Entry[T]
    ) -> tuple[T | None, float | None]:
        """Reload ahead of expiry; if the loader fails, the entry is still valid: serve it (the lock then expires
        on its own, and a later read tries again)."""
        try:
            fresh, refresh_at = await self._fill(key, load, token)
        except Exception:  # whatever the database raised, the cached value is still within its TTL
            return self._seen("refresh-failed", entry.value), entry.refresh_at
        return self._seen("refresh", fresh), refresh_at

    def _seen(self, outcome: str, value: T | None) -> T | None:
        self._observe(self.name, outcome)
        return value

    async def _wait_for_entry(self, key: str) -> Entry[T] | None:
        """Poll for the lock winner's entry for at most ``wait_s``; None if it did not come."""
        deadline = time.monotonic() + self._policy.wait_s
        while time.monotonic() < deadline:
            await asyncio.sleep(self._policy.poll_s)  # sleep-ok: the poll interval of a deadline-bound wait
            raw = await self._call(self._redis.get(key))
            if raw is not None:
                return self._decode(raw)
        return None

    async def _lock(self, key: str) -> str | None:
        """A token if this call won the key's fill lock, None if another holds it."""
        token = secrets.token_hex(8)
        won = await self._call(self._redis.set(f"{key}:lock", token, nx=True, px=int(self._policy.lock_s * 1000)))
        return token if won else None

    async def _fill(self, key: str, load: Callable[[], Awaitable[T | None]], token: str) -> tuple[T | None, float]:
        value = await load()
        _, refresh_at = await self._save(key, value, token=token, announce="")
        return value, refresh_at

    async def _save(self, key: str, value: T | None, *, token: str, announce: str) -> tuple[bool | None, float]:
        """Store ``value`` (fail soft: a Redis that refuses the write costs nothing but the cached copy) and publish
        ``announce`` if it was stored. Whether it was (None: Redis did not answer) and the entry's refresh point."""
        ttl_s = self._policy.ttl_s if value is not None else self._policy.missing_ttl_s
        ttl_s *= random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 - spreading expiries, not a secret
        version = self._version(value)
        refresh_at = time.time() + ttl_s * (1 - REFRESH_AHEAD)
        body = MISSING if value is None else PRESENT + self._codec.encode(value)
        entry = f"{version}:{refresh_at:.3f}:".encode() + body
        channel = CHANNEL if announce else ""
        args: list[bytes | str | int] = [version, entry, int(ttl_s * 1000), token, channel, announce]
        try:
            stored = await self._call(self._store(keys=[key, f"{key}:lock"], args=args))
        except CacheUnavailableError:
            self._observe(self.name, "store-failed")
            return None, refresh_at
        return bool(stored), refresh_at

    def _version(self, value: T | None) -> int:
        return 0 if value is None else self._codec.version(value)

    def _decode(self, raw: bytes | str) -> Entry[T]:
        data = raw if isinstance(raw, bytes) else raw.encode()  # bytes: the client does not decode responses
        version, refresh_at, body = data.split(b":", 2)
        value = None if body[:1] == MISSING else self._codec.decode(body[1:])
        return Entry(value=value, version=int(version), refresh_at=float(refresh_at))

    async def _call(self, command: Awaitable[R]) -> R:
        return await _bounded(command, self._policy.redis_timeout_s)


async def _bounded(command: Awaitable[R], timeout_s: float) -> R:
    """A Redis command within ``timeout_s``; any failure is ``CacheUnavailableError`` (skip the cache)."""
    try:
        async with asyncio.timeout(timeout_s):
            return await command
    except (RedisError, OSError, TimeoutError) as error:
        raise CacheUnavailableError(repr(error)) from error
