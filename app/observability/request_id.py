"""Every request gets an id that is echoed on the response and carried by every log line it causes.

Why a pure ASGI middleware (not ``BaseHTTPMiddleware``): it only looks at the scope and wraps ``send``, so it adds
nothing to the body path and sees every response, errors included. An incoming ``X-Request-ID`` (Nginx sets one)
is kept when it is a plain token, otherwise replaced, so a client cannot inject newlines or megabytes into our
logs. See notes/fastapi.md, "Request ids".
"""

from __future__ import annotations

import re
import uuid

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
SCOPE_KEY = "refstack.request_id"
_ACCEPTED = re.compile(r"[A-Za-z0-9._-]{1,128}")


def accept_or_make(incoming: str | None) -> str:
    """The incoming id if it is a safe token (``^[A-Za-z0-9._-]{1,128}$``), else a fresh uuid4 hex."""
    if incoming is not None and _ACCEPTED.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def request_id_of(scope: Scope) -> str | None:
    """The id the middleware chose for this request (``None`` outside it)."""
    value = scope.get(SCOPE_KEY)
    return value if isinstance(value, str) else None


class RequestIdMiddleware:
    """Choose the id, keep it in the scope, bind it for structlog, and put it on the response headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_or_make(Headers(scope=scope).get(HEADER))
        scope[SCOPE_KEY] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        # bind/reset rather than ``bound_contextvars``: the same effect without a generator-based context manager per
        # request (2% of a worker on the cached read, notes/fastapi.md, "What a request costs")
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
