"""W3C trace context: which request caused a change, carried from the HTTP request into every message it writes.

Why: a notification sent by the worker seconds later must be traceable to the booking request that caused it. The
middleware accepts an incoming ``traceparent`` (W3C Trace Context, version 00) when it is well formed and keeps
its trace id, or starts a new trace; either way this request is a new span (a fresh parent id), so a consumer's
span is a child of ours, not of our caller's. The pair (request id, traceparent) lives in a ``ContextVar`` for the
duration of the request; the outbox writer reads it (app/messaging/outbox.py), so no use case passes it along by
hand, and a background job (the sweeper, the reconciler) writes none. The trace id is bound for structlog too, so
the request's log lines carry it. Small and standard on purpose: no sampling decisions, no ``tracestate``, no
tracing SDK. See notes/rabbitmq.md, "The outbox and its relay".
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar
from dataclasses import dataclass

import structlog
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.observability.request_id import request_id_of

HEADER = "traceparent"
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_INVALID_TRACE_ID = "0" * 32
_INVALID_PARENT_ID = "0" * 16


@dataclass(frozen=True)
class Cause:
    """The request a change was made for: its id and the traceparent naming its span."""

    request_id: str | None
    traceparent: str | None

    @property
    def trace_id(self) -> str | None:
        return None if self.traceparent is None else self.traceparent.split("-")[1]


NO_CAUSE = Cause(request_id=None, traceparent=None)
_CURRENT: ContextVar[Cause] = ContextVar("refstack_cause", default=NO_CAUSE)


def current_cause() -> Cause:
    """The cause of whatever runs now (``NO_CAUSE`` outside a request)."""
    return _CURRENT.get()


def child_traceparent(incoming: str | None) -> str:
    """A traceparent for a new span: the incoming trace id and flags when ``incoming`` is valid, else a new trace."""
    match = _TRACEPARENT.fullmatch(incoming.strip().lower()) if incoming is not None else None
    if match is not None and match[1] != _INVALID_TRACE_ID and match[2] != _INVALID_PARENT_ID:
        trace_id, flags = match[1], match[3]
    else:
        trace_id, flags = secrets.token_hex(16), "01"
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


class TraceContextMiddleware:
    """Choose the request's traceparent and publish the request's ``Cause`` for the code it runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cause = Cause(request_id_of(scope), child_traceparent(Headers(scope=scope).get(HEADER)))
        token = _CURRENT.set(cause)
        bound = structlog.contextvars.bind_contextvars(trace_id=cause.trace_id)  # bind/reset: see request_id.py
        try:
            await self.app(scope, receive, send)
        finally:
            structlog.contextvars.reset_contextvars(**bound)
            _CURRENT.reset(token)
