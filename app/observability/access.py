"""One access-log line and one metrics observation per request, from a single measurement.

Why here and not in Nginx alone: only the app knows the route *template* (``/api/v1/events/{id}``), which keeps
metric labels bounded and log lines groupable. Why pure ASGI: it wraps ``send`` to learn the status and reads the
route the router left in the scope after the call. One line and one observation is the whole per-request cost of
observability: what each costs is measured in notes/fastapi.md, "What a request costs". See notes/fastapi.md,
"Observability".
"""

from __future__ import annotations

import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.metrics import UNMATCHED_ROUTE, HttpMetrics

log = structlog.get_logger("refstack.access")


def route_template(scope: Scope) -> str:
    """The matched route's path template, or a fixed label when nothing matched (so 404 floods stay one series)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # Bound once, when the app builds its middleware (after create_app configured logging): the module's lazy
        # proxy would rebuild a bound logger on every call, 40% of the line's cost (notes/fastapi.md).
        self.log = log.bind()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before starting a response

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            self.metrics.observe(method=scope["method"], route=route, status=status, seconds=seconds)
            self.log.info(
                "request",
                method=scope["method"],
                route=route,
                path=scope["path"],
                status=status,
                duration_ms=round(seconds * 1000, 2),
            )
