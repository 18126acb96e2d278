"""Security headers on every answer the app makes: no sniffing, no referrer, no framing, a deny-all CSP by default.

Why in the app and not only in Nginx: the app must be safe when reached without the edge (a second proxy, a health
checker, a developer's port-forward), and only the app knows which answer is HTML that needs a looser policy (the
docs page sets its own ``Content-Security-Policy``, which this middleware keeps). Nginx fills in the same headers
only on answers the app did not make (its own 413/429/502/504 pages). A pure ASGI middleware, like
app/observability/request_id.py: it touches only the response start, never the body. See notes/security.md,
"Headers, CORS and docs".
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The API answers JSON: nothing in it may load, run, frame or be framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": API_CSP,
}


class SecurityHeadersMiddleware:
    """Add each header of ``SECURITY_HEADERS`` the route did not set itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
