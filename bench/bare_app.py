"""The floor of ``bench/cache.py``: a bare FastAPI app with one route that answers the same JSON an event read does.

Why this floor: the question the cache bench answers is "how close does the cached event read come to what the
hardware allows", so the floor is the cheapest honest app on the same path: FastAPI, uvicorn with the same two
workers and flags as the stack's app (stack/native/web.py, ``AppServer``), behind an Nginx rendered from the same
template, with no middleware, no Redis, no database and a constant body. Only what refstack adds on top of that
shows up as a ratio below 1. See notes/fastapi.md, "What a request costs".

Run by bench/cache.py: ``python -m uvicorn bench.bare_app:create_app --factory --workers 2 ...``.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response

# An event as GET /api/v1/events/{id} renders it (same fields, same size), fixed.
EVENT_JSON = (
    b'{"id":"da298dc9-3b0f-4508-a707-6de2a24b5d0b","title":"Flash Sale Live","city":"Berlin","venue":"Velodrom",'
    b'"starts_at":"2026-12-07T16:00:00Z","price_cents":4900,"rows":10,"seats_per_row":20}'
)


def create_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/api/v1/events/{event_id}")
    async def read(event_id: str) -> Response:
        return Response(EVENT_JSON, media_type="application/json")

    return app
