"""The one Redis client of the process, with timeouts and an explicit no-retry policy.

Why ``retry=Retry(NoBackoff(), 0)``: a client built with ``Redis(host=...)`` retries timeouts by default (3
retries with backoff in redis-py 6.0-8.0; 10 in 8.1, the version uv.lock pins: a GET on a frozen Redis failed
after ~15 s, not 1 s), while ``from_url`` connections happen to default to none. Saying it explicitly keeps the
bound whichever way a client is built and whatever a later release changes. Retries belong to the caller, who
knows whether the command is idempotent. See notes/redis.md, "Timeouts".

Why ``ResetAwareConnection``: a pooled connection the peer closed or reset while it sat idle (Redis restarted, a
load balancer's idle timeout, or a fault test cutting the hop, notes/fault_tolerance.md) used to fail the next
command that took it from the pool, once per such connection. redis-py's pool does look for a closed connection
when it hands one out, but 8.x skips that look whenever RESP3 maintenance notifications are on (the default), and
it never looked for a reset. ``can_read`` now reports the peer's goodbye, which the event loop has already seen,
so the pool reconnects before the command is written: no round trip, nothing sent twice (notes/redis.md, "Dead
connections in the pool"). And uvloop, which runs the app, raises ``RuntimeError("unable to perform operation on
<TCPTransport closed=True ...>; the handler is closed")`` when a command is written to a connection reset between
that look and the write (MagicStack/uvloop#506; plain asyncio raises nothing there). redis-py maps ``OSError`` on a
write to ``ConnectionError`` but lets that one through, which escaped every ``except RedisError`` as a 500.
Translated here, once, every caller's handling applies.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from app.settings import Settings


class ResetAwareConnection(Connection):
    """A connection the peer closed while idle is replaced when the pool hands it out; a write on one the peer reset
    is a ``ConnectionError``, whichever event loop runs it."""

    async def can_read(self) -> bool:
        """Asked by the pool before it hands this connection out; raising makes the pool reconnect it first."""
        reader = self._reader
        if reader is not None and (reader.at_eof() or reader.exception() is not None):
            raise RedisConnectionError("the peer closed this connection while it was idle in the pool")
        return await super().can_read()

    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        try:
            await super().send_packed_command(command, check_health)
        except RuntimeError as error:  # redis-py has already disconnected it: the next command reconnects
            raise RedisConnectionError(f"the connection was reset: {error}") from error


def open_redis(settings: Settings) -> Redis:
    """A pooled client; it connects on first use, so building it never fails on a Redis that is down."""
    return Redis.from_url(
        str(settings.redis_url),
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        retry=Retry(NoBackoff(), 0),
        connection_class=ResetAwareConnection,
    )
