"""``ReplicaRouter``: reads go to the streaming replica unless the caller must see its own write or the replica is
unfit; writes never come here (they use the primary engine directly).

Why these moving parts, all bounded by ``replica_check_timeout_s``:

- a health check per worker (a periodic job, app/background.py) samples the replica every
  ``replica_check_interval_s`` (replayed LSN, lag in bytes
  against the primary's ``pg_current_wal_lsn()``, lag in seconds only while WAL is outstanding) and takes it out
  of rotation when unreachable or past ``replica_max_lag_bytes`` / ``replica_max_lag_s``, back in when fit;
- read-your-writes: after a user's write, ``remember_write`` stores the primary's
  ``pg_current_wal_insert_lsn()`` in Redis under the user id for ``read_your_writes_ttl_s`` (any worker, any
  device of that user sees it); a read for that user uses the replica only once its replayed LSN has reached it.
  The replayed LSN only grows, so a cached value that is already far enough is always right; only a "not yet"
  is re-asked, at most every ``replica_lsn_cache_s``;
- a read that the replica does not finish within ``replica_read_timeout_s`` (frozen, dead, slow) is abandoned,
  the replica is taken out of rotation at once, and the read is re-run on the primary: no request hangs on it.

In or out of rotation is one gate, ``ReplicaRotation`` (app/db/replica_rotation.py): a health gate that only a
fit sample reopens, not a circuit breaker; its docstring says why.

Every doubt (Redis down, replica unchecked) sends the read to the primary: correct, only busier.
See notes/db_scaling.md, "ReplicaRouter".
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from redis.asyncio import Redis
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engines import DatabaseUnreachable, fetch_row
from app.db.replica_rotation import ReplicaRotation
from app.db.replica_routing import (
    LagLimits,
    Reason,
    ReplicaSample,
    Route,
    Target,
    decide,
    lag_seconds,
    unfit,
)
from app.observability.metrics import ReplicaMetrics
from app.settings import Settings

T = TypeVar("T")
log = structlog.get_logger(__name__)

# LSNs as byte positions (numeric), so they compare and subtract as integers.
WRITE_LSN_SQL = "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"
PRIMARY_LSN_SQL = "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"
REPLAY_LSN_SQL = "SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn"
REPLICA_STATE_SQL = (
    "SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn, pg_last_wal_receive_lsn() - '0/0'::pg_lsn,"
    " extract(epoch FROM now() - pg_last_xact_replay_timestamp())"
)
# Keep the larger LSN (two workers may record one user's writes out of order) and refresh the TTL. Fixed-width
# upper-case hex compares as a string exactly, with no float rounding in Lua.
KEEP_MAX_LSN = """
local current = redis.call('GET', KEYS[1])
if (not current) or ARGV[1] > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""
# Errors that say "the replica could not answer", as opposed to the use case's own errors (not found...).
# DatabaseUnreachable: no connection could be opened, e.g. when the pool replaces a link the stopped replica closed.
REPLICA_FAILURES = (SQLAlchemyError, OSError, TimeoutError, DatabaseUnreachable)


def lsn_key(user_id: uuid.UUID) -> str:
    return f"refstack:write-lsn:{user_id}"


def lsn_text(lsn: int) -> str:
    return f"{lsn:016X}"


class ReplicaRouter:
    def __init__(
        self,
        *,
        primary: AsyncEngine,
        replica: AsyncEngine | None,
        redis: Redis,
        settings: Settings,
        metrics: ReplicaMetrics,
    ) -> None:
        self._primary = primary
        self._replica = replica
        self._redis = redis
        self._metrics = metrics
        self._limits = LagLimits(max_bytes=settings.replica_max_lag_bytes, max_s=settings.replica_max_lag_s)
        self._probe_timeout_s = settings.replica_check_timeout_s
        self._read_timeout_s = settings.replica_read_timeout_s
        self._lsn_cache_s = settings.replica_lsn_cache_s
        self._lsn_ttl_ms = int(settings.read_your_writes_ttl_s * 1000)
        self._rotation = ReplicaRotation(has_replica=replica is not None, in_rotation=metrics.in_rotation)
        self._replay_lsn: int | None = None
        self._replay_seen_at = -math.inf
        self._replay_refresh: asyncio.Task[None] | None = None
        self._behind_since: float | None = None
        self._abandoned: set[asyncio.Future[Any]] = set()

    # -- health ---------------------------------------------------------------------------------------------
    async def check_once(self) -> Reason | None:
        """Sample the replica once and put it in or out of rotation; why it is out, or None when in."""
        if self._replica is None:
            return self._rotation.out_reason
        sample = await self._sample(self._replica)
        reason = unfit(sample, self._limits)
        if reason != self._rotation.out_reason:
            log.info("replica_rotation_changed", out_of_rotation=reason, sample=sample)
        self._rotation.sampled(reason)
        if sample is not None:
            self._saw_replay(sample.replay_lsn)
            self._metrics.lag_bytes.set(sample.lag_bytes)
            self._metrics.lag_seconds.set(sample.lag_s)
        return reason

    async def _sample(self, replica: AsyncEngine) -> ReplicaSample | None:
        try:
            async with asyncio.timeout(self._probe_timeout_s):
                replayed, received, replay_age_s = await fetch_row(replica, REPLICA_STATE_SQL)
        except Exception as error:  # unreachable, frozen, refusing: out of rotation, and the loop goes on
            log.warning("replica_check_failed", error=repr(error))
            return None
        if replayed is None:  # not a standby (promoted, or misconfigured): it cannot honour a write LSN
            return None
        try:  # the primary's position; if it does not answer, the replica's own backlog is the best we know
            async with asyncio.timeout(self._probe_timeout_s):
                (ahead,) = await fetch_row(self._primary, PRIMARY_LSN_SQL)
        except Exception:  # the primary's own outage is reported by readiness, not here
            ahead = received if received is not None else replayed
        lag_bytes = max(0, int(ahead) - int(replayed))
        now = time.monotonic()
        self._behind_since = (self._behind_since or now) if lag_bytes else None
        age_s = float(replay_age_s) if replay_age_s is not None else None
        lag_s = lag_seconds(lag_bytes, age_s, behind_for_s=now - (self._behind_since or now))
        return ReplicaSample(replay_lsn=int(replayed), lag_bytes=lag_bytes, lag_s=lag_s)

    def cancel_abandoned(self) -> None:
        """On shutdown: cancel the replica reads left behind, whose clean-up may still wait on a frozen server."""
        for abandoned in list(self._abandoned):
            abandoned.cancel()

    # -- read-your-writes -----------------------------------------------------------------------------------
    async def remember_write(self, user_id: uuid.UUID) -> None:
        """Call after a committed write of ``user_id``; never fails the request (a failure is logged)."""
        try:
            async with asyncio.timeout(self._probe_timeout_s):
                (lsn,) = await fetch_row(self._primary, WRITE_LSN_SQL)
                await self._redis.eval(KEEP_MAX_LSN, 1, lsn_key(user_id), lsn_text(int(lsn)), self._lsn_ttl_ms)
        except Exception as error:
            log.warning("write_lsn_not_recorded", user_id=str(user_id), error=repr(error))

    async def _user_lsn(self, user_id: uuid.UUID | None) -> tuple[int | None, bool]:
        """The LSN this user must see and whether we know it (False when Redis did not answer in time)."""
        if user_id is None:
            return None, True
        try:
            async with asyncio.timeout(self._probe_timeout_s):
                stored = await self._redis.get(lsn_key(user_id))
        except Exception as error:
            log.warning("write_lsn_unknown", user_id=str(user_id), error=repr(error))
            return None, False
        if stored is None:
            return None, True
        return int(stored.decode() if isinstance(stored, bytes) else stored, 16), True

    def _saw_replay(self, lsn: int) -> None:
        self._replay_lsn = max(lsn, self._replay_lsn or 0)
        self._replay_seen_at = time.monotonic()

    async def _replay_lsn_reaching(self, wanted: int) -> int | None:
        """The replica's replayed LSN, asked again only if the cached one is short of ``wanted`` and older than
        ``replica_lsn_cache_s``; concurrent reads share one question."""
        cached = self._replay_lsn
        fresh = time.monotonic() - self._replay_seen_at < self._lsn_cache_s
        if (cached is not None and cached >= wanted) or fresh or self._replica is None:
            return cached
        if self._replay_refresh is None or self._replay_refresh.done():
            self._replay_refresh = asyncio.create_task(self._refresh_replay_lsn(self._replica))
        await asyncio.shield(self._replay_refresh)
        return self._replay_lsn

    async def _refresh_replay_lsn(self, replica: AsyncEngine) -> None:
        try:
            async with asyncio.timeout(self._probe_timeout_s):
                (lsn,) = await fetch_row(replica, REPLAY_LSN_SQL)
        except Exception as error:  # the health loop decides about rotation; this read just stays on the primary
            log.warning("replay_lsn_unknown", error=repr(error))
            return
        if lsn is not None:
            self._saw_replay(int(lsn))

    # -- routing --------------------------------------------------------------------------------------------
    async def route(self, user_id: uuid.UUID | None) -> Route:
        """Where a read for ``user_id`` (None: anonymous) goes now."""
        user_lsn, known = await self._user_lsn(user_id)
        replay_lsn = self._replay_lsn
        if self._rotation.out_reason is None and known and user_lsn is not None:
            replay_lsn = await self._replay_lsn_reaching(user_lsn)
        return decide(
            out_of_rotation=self._rotation.out_reason, user_lsn=user_lsn, user_lsn_known=known, replay_lsn=replay_lsn
        )

    async def read(self, user_id: uuid.UUID | None, use_case: Callable[[AsyncEngine], Awaitable[T]]) -> T:
        """Run a read-only ``use_case`` on the engine ``route`` picks; a replica that fails or stalls is left
        behind and the read re-run on the primary."""
        route = await self.route(user_id)
        if route.target is Target.PRIMARY or self._replica is None:
            return await self.on_primary(route.reason, use_case)
        attempt = asyncio.ensure_future(use_case(self._replica))
        done, _ = await asyncio.wait({attempt}, timeout=self._read_timeout_s)
        if not done:
            self._abandon(attempt)
            failure: BaseException = TimeoutError(f"replica read exceeded {self._read_timeout_s} s")
        elif (error := attempt.exception()) is not None:
            if not isinstance(error, REPLICA_FAILURES):
                raise error
            failure = error
        else:
            self._metrics.routed(target=Target.REPLICA, reason=route.reason)
            return attempt.result()
        log.warning("replica_read_failed", error=repr(failure))
        self._rotation.take_out_after_failed_read()
        return await self.on_primary(Reason.REPLICA_FAILED, use_case)

    async def on_primary(self, reason: Reason, use_case: Callable[[AsyncEngine], Awaitable[T]]) -> T:
        self._metrics.routed(target=Target.PRIMARY, reason=reason)
        return await use_case(self._primary)

    def _abandon(self, attempt: asyncio.Future[Any]) -> None:
        """Cancel without waiting: its clean-up may wait on the frozen server, and this request must not."""
        attempt.cancel()
        self._abandoned.add(attempt)
        attempt.add_done_callback(self._forget)

    def _forget(self, attempt: asyncio.Future[Any]) -> None:
        self._abandoned.discard(attempt)
        if not attempt.cancelled():
            attempt.exception()  # retrieved, so asyncio does not report it as never retrieved
