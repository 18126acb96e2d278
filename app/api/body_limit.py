"""Refuse request bodies over ``max_body_bytes`` with 413 before they cost memory.

Why both checks: a declared ``Content-Length`` over the limit is refused at once, without reading a byte; a
chunked or lying body is counted as it streams and refused when the count passes the limit. Nginx has its own
``client_max_body_size``; this guard keeps the app safe when reached directly. See notes/fastapi.md,
"Problem details".
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import Problem


def declared_length(scope: Scope) -> int | None:
    """The ``Content-Length`` the client announced, if it is a number (a server rejects malformed ones first)."""
    text = Headers(scope=scope).get("content-length", "").strip()
    return int(text) if text.isdigit() else None


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
        self.app = app
        self.max_body_bytes = max_body_bytes

    def _too_large(self) -> Problem:
        return Problem(413, detail=f"The request body exceeds the limit of {self.max_body_bytes} bytes.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large().response(scope)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # An HTTPException subclass: FastAPI re-raises it from body parsing (instead of turning it
                    # into a 400) and the problem handler renders it.
                    raise self._too_large()
            return message

        await self.app(scope, counting_receive, send)
