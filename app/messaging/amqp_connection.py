"""The app's RabbitMQ connection: connects in the background, so a broker that is down never blocks startup.

Why not ``await aio_pika.connect_robust(...)`` in the lifespan: it waits for the first connection and raises if it
fails, so the app could not start (even degraded) while RabbitMQ is down. This builds the same
``RobustConnection`` that ``connect_robust`` builds, with ``fail_fast`` off, and starts its ``connect`` as a task:
aio-pika's own loop retries every ``amqp_reconnect_interval_s`` (each attempt bounded by ``amqp_timeout_s``)
until the broker answers, and reconnects after later drops. ``connected`` says whether a link is up right now;
``round_trip`` proves the broker answers (an open socket to a frozen broker proves nothing).
See notes/rabbitmq.md, "Connections" and notes/fastapi.md, "Readiness".
"""

from __future__ import annotations

import asyncio
import contextlib

from aio_pika import RobustConnection
from yarl import URL

from app.settings import Settings


class AmqpNotConnectedError(ConnectionError):
    """No link to the broker yet (still connecting, or reconnecting)."""


class AmqpConnection:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._connection: RobustConnection | None = None
        self._connecting: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin connecting in the background; returns at once. Call from inside the running loop."""
        self._connection = RobustConnection(
            URL(str(self._settings.amqp_url)),
            fail_fast=False,
            reconnect_interval=self._settings.amqp_reconnect_interval_s,
        )
        self._connecting = asyncio.create_task(
            self._connection.connect(timeout=self._settings.amqp_timeout_s), name="amqp-connect"
        )

    @property
    def connected(self) -> bool:
        return self._connection is not None and self._connection.connected.is_set()

    async def connection_when_up(self) -> RobustConnection:
        """Wait (unbounded: the caller bounds it) until the first link is up; for a process that can do nothing
        without the broker, the worker."""
        if self._connection is None:
            raise AmqpNotConnectedError("start() the connection first")
        await self._connection.connected.wait()
        return self._connection

    def robust_connection(self) -> RobustConnection:
        """The live connection for publishers and consumers; raises while there is no link."""
        if self._connection is None or not self.connected:
            raise AmqpNotConnectedError(f"not connected to {self._connection or 'RabbitMQ'}")
        return self._connection

    async def round_trip(self) -> None:
        """Open and close a channel: two broker replies, so a frozen or wedged broker fails this."""
        channel = await self.robust_connection().channel(publisher_confirms=False)
        await channel.close()

    async def aclose(self) -> None:
        """Close first, then stop the connecting task: cancelled before ``close()``, aio-pika takes the cancellation
        for a failed attempt, logs "reconnecting after N seconds" and sleeps the whole reconnect interval (5 s) before
        the close can end it, which made every shutdown with the broker down last 5 s."""
        if self._connection is not None:
            await self._connection.close()
        if self._connecting is not None:
            self._connecting.cancel()
            # its outcome after the close is moot: cancelled, or the error of an attempt the close cut short
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connecting
