"""The worker's own HTTP endpoint on loopback: ``/health/live``, ``/health/ready`` and ``/metrics``.

Why HTTP and not a file: the stack, compose and an orchestrator all probe services over HTTP already, and the same
port serves Prometheus. Why this small: three fixed GET routes, no framework and no request body; a request line
is read with a deadline and anything else is a 404. Ready means "every consumer is subscribed, no stop has begun,
and the broker answers a round trip now" (a frozen broker keeps its socket open, so a link that looks up proves
nothing). See notes/rabbitmq.md, "The worker and its inbox".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

READ_TIMEOUT_S = 2.0


class HealthServer:
    def __init__(self, port: int, ready: Callable[[], Awaitable[bool]], registry: CollectorRegistry) -> None:
        self._port = port
        self._ready = ready
        self._registry = registry
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", self._port)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _route(self, path: str) -> tuple[int, str, bytes]:
        if path == "/health/live":
            return 200, "application/json", b'{"status":"ok"}'
        if path == "/health/ready":
            ready = await self._ready()
            return (200 if ready else 503), "application/json", b'{"status":"%s"}' % (b"ready" if ready else b"down")
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        return 404, "application/json", b'{"status":"not found"}'

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                request_line = (await reader.readline()).decode("latin-1").split()
                while (await reader.readline()).strip():
                    pass  # headers: nothing in them matters here
            path = request_line[1] if len(request_line) == 3 and request_line[0] == "GET" else ""
            status, content_type, body = await self._route(path)
            head = f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass  # a client that sends nothing in time, or leaves: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
