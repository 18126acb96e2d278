"""A circuit breaker's fields in one Redis hash, so every worker and instance sees one circuit.

Why a mirror and a write log instead of pybreaker's ``CircuitRedisStorage``: pybreaker asks its storage
synchronously (a property read per question), and its Redis storage answers with the blocking client, which would
stall the event loop. Here pybreaker keeps running its state machine, unchanged and synchronous, against a local
copy of the fields (``MirroredStorage``), which records every write it makes (count a failure, set the state,
stamp ``opened_at``). The breaker refreshes the copy before it admits a call and before it reports an outcome,
then sends the recorded writes in one Lua script that applies them in order and returns the whole hash: one round
trip, atomic, never interleaved with another worker's writes. Every exchange is bounded by a deadline
(``breaker_exchange_timeout_s``, 75 ms) much shorter than the client's 1 s; a failed one leaves the copy as it
was, the worker goes on with it as its own local breaker, and it tries Redis again only after a pause (a frozen
Redis costs one short wait, not one per call).
Each switch between shared and local is logged once (``breaker_went_local``, ``breaker_shared_again``).
See notes/redis.md, "One breaker for all workers", and notes/fault_tolerance.md, "Circuit breaker".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pybreaker
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

LOCAL_AFTER_FAILURE_S = 1.0
"""After a failed exchange the worker stays on its local breaker this long before it asks Redis again."""
SHARED_REFRESH_INTERVAL_S = 1.0
"""How often each worker refreshes its view while it makes no calls (so /metrics tells the truth when idle)."""
KEY_PREFIX = "refstack:breaker:"

log = structlog.get_logger(__name__)

# Applies (op, field, value) triplets in order and returns the hash. "max" keeps the later of two opened_at stamps,
# so two workers that open the circuit at once leave the later window, as pybreaker's own Redis storage does.
APPLY_WRITES_LUA = """
for i = 1, #ARGV, 3 do
  local op, field, value = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if op == 'incr' then
    redis.call('HINCRBY', KEYS[1], field, value)
  elseif op == 'max' then
    local current = tonumber(redis.call('HGET', KEYS[1], field))
    if current == nil or tonumber(value) > current then redis.call('HSET', KEYS[1], field, value) end
  else
    redis.call('HSET', KEYS[1], field, value)
  end
end
return redis.call('HGETALL', KEYS[1])
"""

STATE, FAILURES, SUCCESSES, OPENED_AT = "state", "failures", "successes", "opened_at"


class MirroredStorage(pybreaker.CircuitBreakerStorage):
    """pybreaker's storage: this process's copy of the circuit's fields, and the writes made to it since the last
    exchange (``take_writes``). Not ``recording``, it is simply a local breaker's memory."""

    def __init__(self, *, recording: bool) -> None:
        super().__init__("mirrored")
        self._recording = recording
        self._state = pybreaker.STATE_CLOSED
        self._failures = 0
        self._successes = 0
        self._opened_at: float | None = None
        self._writes: list[str] = []

    def adopt(self, fields: Mapping[bytes, bytes]) -> None:
        """Take the shared hash as the truth; an empty hash (never written, or Redis restarted empty) is closed."""
        self._state = fields.get(STATE.encode(), pybreaker.STATE_CLOSED.encode()).decode()
        self._failures = int(fields.get(FAILURES.encode(), b"0"))
        self._successes = int(fields.get(SUCCESSES.encode(), b"0"))
        opened_at = fields.get(OPENED_AT.encode())
        self._opened_at = float(opened_at) if opened_at is not None else None

    def take_writes(self) -> list[str]:
        """The recorded writes as flat (op, field, value) triplets, and an empty log from now on."""
        writes, self._writes = self._writes, []
        return writes

    def _record(self, op: str, field: str, value: object) -> None:
        if self._recording:
            self._writes += [op, field, str(value)]

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, state: str) -> None:
        self._state = state
        self._record("set", STATE, state)

    def increment_counter(self) -> None:
        self._failures += 1
        self._record("incr", FAILURES, 1)

    def reset_counter(self) -> None:
        self._failures = 0
        self._record("set", FAILURES, 0)

    def increment_success_counter(self) -> None:
        self._successes += 1
        self._record("incr", SUCCESSES, 1)

    def reset_success_counter(self) -> None:
        self._successes = 0
        self._record("set", SUCCESSES, 0)

    @property
    def counter(self) -> int:
        return self._failures

    @property
    def success_counter(self) -> int:
        return self._successes

    @property
    def opened_at(self) -> datetime | None:
        return datetime.fromtimestamp(self._opened_at, UTC) if self._opened_at is not None else None

    @opened_at.setter
    def opened_at(self, now: datetime) -> None:
        self._opened_at = now.timestamp()
        self._record("max", OPENED_AT, repr(self._opened_at))


class RedisCircuitState:
    """One circuit's hash in Redis, exchanged with a ``MirroredStorage`` in one bounded round trip."""

    def __init__(self, redis: Redis, name: str, *, timeout_s: float) -> None:
        """``timeout_s`` bounds one exchange (``breaker_exchange_timeout_s``): a healthy loopback Redis answers in
        well under 1 ms, but a busy host can hold the event loop for longer."""
        self.key = f"{KEY_PREFIX}{name}"
        self._timeout_s = timeout_s
        self._apply_writes = redis.register_script(APPLY_WRITES_LUA)  # EVALSHA, loading the script on NOSCRIPT
        self._local_until = 0.0
        self._shared = True

    async def exchange(self, storage: MirroredStorage) -> bool:
        """Send the storage's writes and adopt the hash Redis returns: True when shared, False when local.

        On a timeout the script may or may not have run; either way the writes stay only in this worker's copy
        until a later exchange adopts the shared hash again."""
        writes = storage.take_writes()
        if time.monotonic() < self._local_until:
            return False
        try:
            async with asyncio.timeout(self._timeout_s):
                flat: Sequence[bytes] = await self._apply_writes(keys=[self.key], args=writes)
        except (RedisError, OSError, TimeoutError) as error:
            self._local_until = time.monotonic() + LOCAL_AFTER_FAILURE_S
            if self._shared:
                log.warning("breaker_went_local", key=self.key, error=repr(error), unsent_writes=len(writes) // 3)
            self._shared = False
            return False
        storage.adopt(dict(zip(flat[::2], flat[1::2], strict=True)))
        if not self._shared:
            log.info("breaker_shared_again", key=self.key)
        self._shared = True
        return True
