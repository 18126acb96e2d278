"""The last line: an exception nobody handled becomes a generic 500 problem, logged with the request id.

Why a pure ASGI middleware inside the request-id and access-log layers rather than an ``Exception`` handler:
Starlette runs ``Exception`` handlers in ``ServerErrorMiddleware``, *outside* every user middleware, so that
response would miss ``X-Request-ID``, the access line and the metrics, and the error would still be re-raised to
the server. Here the 500 flows back through them like any other response. The body names no exception and no
trace; the log line keeps the trace. See notes/fastapi.md, "Problem details".
"""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import Problem

log = structlog.get_logger("refstack.errors")

GENERIC_DETAIL = "The server could not handle this request. Quote the request_id when reporting it."


class UnhandledErrorMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def send_tracking(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            log.exception("unhandled_error", method=scope["method"], path=scope["path"])
            if response_started:
                raise  # headers are gone: only the server can end this response, by closing the connection
            await Problem(500, detail=GENERIC_DETAIL).response(scope)(scope, receive, send)
