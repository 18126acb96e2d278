"""A relay in front of PostgreSQL that records the type of every message a client sends after its startup.

Why on the wire: ``before_cursor_execute`` (tests/statement_log.py) sees the statements SQLAlchemy runs, but not
the ``BEGIN`` and ``ROLLBACK`` the driver sends around them, nor whether a statement was prepared again. The
frontend protocol says it exactly: a client waits for the server once per ``Sync`` (``S``, extended protocol) or
``Query`` (``Q``, simple protocol), so their count is the number of round trips. See notes/postgres.md, "One read,
one round trip".
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator

SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104
WAITS_FOR_SERVER = frozenset("SQ")


class FrontendMessages:
    """Parses one client's byte stream into message types (``B`` Bind, ``E`` Execute, ``S`` Sync, ``Q`` Query…)."""

    def __init__(self, record: list[str]) -> None:
        self.record = record
        self.buffer = b""
        self.started = False  # before the StartupMessage, messages carry no type byte

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if not self.started:
                if len(self.buffer) < 8:
                    return
                length, code = struct.unpack("!ii", self.buffer[:8])
                if len(self.buffer) < length:
                    return
                self.buffer = self.buffer[length:]
                self.started = code not in (SSL_REQUEST, GSSENC_REQUEST)
                continue
            if len(self.buffer) < 5:
                return
            kind, length = chr(self.buffer[0]), struct.unpack("!i", self.buffer[1:5])[0]
            if len(self.buffer) < 1 + length:
                return
            self.record.append(kind)
            self.buffer = self.buffer[1 + length :]


class WireRecorder:
    """Listens on a free loopback port and relays every connection to ``target_port``, recording what clients send."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.messages: list[str] = []
        self.port = 0

    def round_trips(self) -> int:
        return sum(kind in WAITS_FOR_SERVER for kind in self.messages)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parse: FrontendMessages | None
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if parse is not None:
                    parse.feed(data)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(
            self._pipe(client_reader, server_writer, FrontendMessages(self.messages)),
            self._pipe(server_reader, client_writer, None),
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[WireRecorder]:
        server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield self
