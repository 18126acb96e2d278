"""``OutboxListener``: ``LISTEN outbox`` on a connection of its own, so a committed message wakes the relay at once.

Why a dedicated asyncpg connection to the primary itself: a LISTEN belongs to one server session and delivers only
while that session lives, so it cannot borrow a pooled connection (given back after each transaction) nor go
through PgBouncer in transaction mode (the next transaction may run on another server connection, which never
listened). The outbox table's trigger sends ``NOTIFY outbox`` from the writing transaction; PostgreSQL delivers it
only when that transaction commits, so a wake-up always finds the row visible. Notifications of one transaction
with the same payload are folded into one, so a sweeper batch of 500 holds wakes the relay once.

Why the relay still polls: a notification sent while this connection was down is gone (NOTIFY is not queued for
sessions that are not listening). After every (re)connect the listener wakes the relay once to catch up, and the
relay's periodic poll covers a connection that died silently. Reconnects back off through the one retry factory's
jitter (app/resilience/retry.py). See notes/rabbitmq.md, "The outbox and its relay".
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import asyncpg
import structlog
from sqlalchemy.engine import make_url

from app.resilience.retry import full_jitter_retrying

log = structlog.get_logger(__name__)
CHANNEL = "outbox"


def plain_dsn(dsn: str) -> str:
    """asyncpg's own ``connect`` takes ``postgresql://``, not SQLAlchemy's ``postgresql+asyncpg://``."""
    return make_url(dsn).set(drivername="postgresql").render_as_string(hide_password=False)


class OutboxListener:
    """Runs ``on_notify`` after each notification (several arriving during one run are folded into the next)."""

    def __init__(
        self, dsn: str, on_notify: Callable[[], Awaitable[object]], *, connect_timeout_s: float, backoff_max_s: float
    ) -> None:
        self._dsn = plain_dsn(dsn)
        self._on_notify = on_notify
        self._connect_timeout_s = connect_timeout_s
        self._backoff_max_s = backoff_max_s
        self._notified_event = asyncio.Event()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Listen and react for the duration of the ``async with``; both tasks cancelled and awaited on exit."""
        tasks = [
            asyncio.create_task(self.listen_forever(), name="outbox-listen"),
            asyncio.create_task(self._react_forever(), name="outbox-wake"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with suppress(asyncio.CancelledError):
                    await task

    def _wake(self) -> None:
        self._notified_event.set()

    async def _react_forever(self) -> None:
        while True:
            await self._notified_event.wait()
            self._notified_event.clear()
            try:
                await self._on_notify()
            except Exception:  # the poll is the safety net; one failed run must not end the reaction
                log.exception("outbox_wake_failed")

    async def listen_forever(self) -> None:
        """Listen, wake on every notification, reconnect when the connection is lost; runs until cancelled."""
        while True:
            reconnecting = full_jitter_retrying(
                max_attempts=sys.maxsize,
                deadline_s=None,
                backoff_base_s=0.1,
                backoff_max_s=self._backoff_max_s,
                retry_if=self._lost,
            )
            await reconnecting(self._listen_once)  # returns when a listening connection ended: listen again

    @staticmethod
    def _lost(error: BaseException) -> bool:
        lost = isinstance(error, (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError))
        if lost:
            log.warning("outbox_listen_failed", error=repr(error))
        return lost

    async def _listen_once(self) -> None:
        connection = await asyncpg.connect(self._dsn, timeout=self._connect_timeout_s)
        closed = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _connection: closed.set())
            await connection.add_listener(CHANNEL, self._notified)
            self._wake()  # whatever was committed while nobody listened
            await closed.wait()
        finally:
            await connection.close(timeout=self._connect_timeout_s)

    def _notified(self, *_args: Any) -> None:
        self._wake()
