"""A real HTTP server on 127.0.0.1 that counts what reaches it: the internal service an SSRF attack aims at.

Why real: "the service never called it" is only proven by a listener that would have seen the call. Any request
answers 200 with a fake secret, the way an unprotected admin port or metadata service would.
See notes/security.md, "SSRF".
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackReceiver(ThreadingHTTPServer):
    hits = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _CountingHandler(BaseHTTPRequestHandler):
    server: LoopbackReceiver

    def _answer(self) -> None:
        self.server.hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"internal-secret")

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Silent: the hit count is the record."""


@contextmanager
def loopback_receiver() -> Iterator[LoopbackReceiver]:
    server = LoopbackReceiver(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=server.serve_forever, name="loopback-receiver", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
