"""``RedisLease``: one holder at a time across every worker and instance, for as long as it keeps renewing, with a
fencing token that grows with every grant.

Why a lease and not a lock: a lock that outlives a crashed holder blocks everyone forever, so the key expires
(``SET key owner NX PX ttl``) and the holder renews it while it works (``PEXPIRE``, only if the key is still its
own). Why compare-and-delete and compare-and-pexpire in Lua: a holder whose lease expired must not release or extend
the next holder's lease, and a ``GET`` then ``DEL`` from the client could interleave with another client's ``SET``;
a script runs as one command. Why a fencing token (``INCR`` in the same script as the ``SET``): expiry means two
processes can *believe* they hold the lease (one paused past its TTL, one that took over), and only the resource
they write to can tell them apart — PostgreSQL refuses a write whose token is older than the newest it has seen
(app/db/fences.py). Redis keeps nothing across a restart here, so the caller passes the newest token PostgreSQL has
seen as ``floor`` and a grant is always above it. Both keys carry one hash tag, so on a Redis Cluster they live in
one slot and the script may touch both. See notes/redis.md, "A lease with fencing tokens".
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

# KEYS: lease, token counter; ARGV: owner, ttl in ms, floor. The token, or nil when someone else holds the lease.
_ACQUIRE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
local token = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if token <= floor then
  token = floor + 1
  redis.call('SET', KEYS[2], token)
end
return token
"""
# KEYS: lease; ARGV: owner, ttl in ms. 1 when the lease was still the owner's and now lasts ttl again.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: lease; ARGV: owner. 1 when the lease was still the owner's and is now free.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseUnavailableError(Exception):
    """Redis could not be asked for the lease (down, paused, cut): nobody can tell whether it is free."""


@dataclass
class HeldLease:
    """A grant: ``token`` goes with every write made under it; ``lost`` turns true once a renewal finds the lease
    gone or taken, or cannot reach Redis (the holder should stop starting new work; its writes are fenced anyway)."""

    name: str
    owner: str
    token: int
    lost: bool = field(default=False)


class RedisLease:
    """The lease called ``name``; ``holding()`` is one attempt to take it for the duration of an ``async with``."""

    def __init__(self, redis: Redis, name: str, *, ttl_ms: int) -> None:
        if ttl_ms < 3:
            raise ValueError(f"a lease lasts at least 3 ms (it is renewed every third of it), got {ttl_ms}")
        self.name = name
        self.ttl_ms = ttl_ms
        self._key = f"{{lease:{name}}}"
        self._token_key = f"{{lease:{name}}}:token"
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self, *, floor: int = 0) -> HeldLease | None:
        """Take the lease if it is free: its token is above ``floor``. None: someone else holds it.
        ``LeaseUnavailableError`` when Redis cannot be asked."""
        owner = secrets.token_hex(16)
        try:
            token = await self._acquire(keys=[self._key, self._token_key], args=[owner, self.ttl_ms, floor])
        except (RedisError, OSError) as error:
            raise LeaseUnavailableError(f"lease {self.name!r}: {error}") from error
        return None if token is None else HeldLease(self.name, owner, int(token))

    async def renew(self, held: HeldLease) -> bool:
        """Extend the lease by its TTL if it is still ``held``'s; False (and ``lost``) otherwise."""
        renewed = bool(await self._renew(keys=[self._key], args=[held.owner, self.ttl_ms]) == 1)
        held.lost = held.lost or not renewed
        return renewed

    async def release(self, held: HeldLease) -> bool:
        """Free the lease if it is still ``held``'s; False: it had expired (and may be another's now)."""
        return bool(await self._release(keys=[self._key], args=[held.owner]) == 1)

    @asynccontextmanager
    async def holding(self, *, floor: int = 0) -> AsyncIterator[HeldLease | None]:
        """The lease for the body of the ``async with`` (None: someone else holds it), renewed every third of its
        TTL while the body runs and released at the end. Acquiring raises ``LeaseUnavailableError`` when Redis is
        down; renewing and releasing never do (a renewal that fails marks the lease ``lost``; a lease not released
        expires by its TTL)."""
        held = await self.acquire(floor=floor)
        if held is None:
            yield None
            return
        renewing = asyncio.create_task(self._keep_renewed(held), name=f"lease-renewal:{self.name}")
        try:
            yield held
        finally:
            renewing.cancel()
            with suppress(asyncio.CancelledError):
                await renewing
            try:
                released = await self.release(held)
            except (RedisError, OSError) as error:
                log.warning("lease_release_failed", lease=self.name, token=held.token, error=str(error))
            else:
                if not released:
                    log.warning("lease_expired_before_release", lease=self.name, token=held.token)

    async def _keep_renewed(self, held: HeldLease) -> None:
        while not held.lost:
            await asyncio.sleep(self.ttl_ms / 3000)  # sleep-ok: the renewal schedule, not a synchronisation
            try:
                renewed = await self.renew(held)
            except (RedisError, OSError) as error:
                held.lost = True
                log.warning("lease_renewal_failed", lease=self.name, token=held.token, error=str(error))
            else:
                if not renewed:
                    log.warning("lease_lost", lease=self.name, token=held.token)
