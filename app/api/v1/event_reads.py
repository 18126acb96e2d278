"""How one event read is answered from a version in hand, and the hot read answered before routing.

Why a rule of its own: ``GET /api/v1/events/{id}`` is the read a flash sale hammers, and it is answered in two
places that must agree byte for byte: the route (app/api/v1/events.py), and ``HotEventReads`` below, which answers
an anonymous read this worker already holds in its first-level cache without entering the router. Both call
``event_response``: a 304 when ``If-None-Match`` names the held version, else the held version's JSON with its
``ETag``; and both refuse to answer from a held copy older than the one the client says it has
(``newest_known``), which then goes to the primary through the route.

Why answer before routing: a profile of a worker serving cached event reads under ``wrk`` spent more of its time
in FastAPI's routing, dependency solving and response validation than in everything the read itself needs (a
dictionary lookup and a send). The floor the read is measured against (bench/bare_app.py) is a bare FastAPI route
with a constant body; the hot read skips the framework's per-request machinery instead, while every middleware
of the app (request id, trace context, security headers, access log and metrics, the unhandled-error guard) still
wraps it. It answers only when the answer cannot differ from the route's: a GET of a canonical id, no
``Authorization`` (the route's only caller-dependent branch is an organizer's read past the first level), a copy
held in this worker's memory and not behind the client's. Anything else, a miss included, goes to the route, which
also fills the first level. Each body is rendered once per version and worker (``event_body``).
See notes/fastapi.md, "What a request costs", and notes/redis.md, "Two levels: a worker's memory in front of Redis".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache

from fastapi import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.etag import entity_tag, is_fresh, matching_versions, not_modified
from app.api.v1.schemas import EventOut
from app.services.events import EventRecord

EVENT_PATH = "/events/{event_id}"  # the route's template under the API router, and its label in logs and metrics
_CANONICAL_ID_LENGTH = 36  # str(uuid.UUID): what the cache is keyed by


@lru_cache(maxsize=4096)
def event_body(record: EventRecord) -> bytes:
    """The JSON of one version of an event: it never changes for that version, so each worker renders it once
    while it stays among the hot ones (records are frozen; equal records render the same bytes)."""
    return EventOut.model_validate(record, from_attributes=True).model_dump_json().encode()


def newest_known(if_none_match: str | None, event_id: uuid.UUID) -> int:
    """The newest version of this event the client says it holds (0: none)."""
    if if_none_match is None:
        return 0
    return max(matching_versions(if_none_match, event_id) or {0})


def event_response(record: EventRecord, if_none_match: str | None) -> Response:
    """304 when the client's copy is this version, else this version with its ``ETag``."""
    etag = entity_tag(record.id, record.version)
    if is_fresh(if_none_match, etag):
        return not_modified(etag)
    return Response(event_body(record), media_type="application/json", headers={"ETag": etag})


@dataclass(frozen=True)
class AnsweredBeforeRouting:
    """What ``HotEventReads`` leaves in ``scope["route"]``: the access log and metrics label a request by the
    route's ``path`` template (app/observability/access.py), the same label the router would have left."""

    path: str


_EVENT_READ = AnsweredBeforeRouting(EVENT_PATH)


class HotEventReads:
    """Pure ASGI, innermost of the app's middleware: an anonymous ``GET {prefix}/events/{id}`` this worker holds is
    answered here; every other request passes through untouched."""

    def __init__(self, app: ASGIApp, *, prefix: str) -> None:
        self.app = app
        self._events = f"{prefix}/events/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"].startswith(self._events):
            response = self._held_answer(scope)
            if response is not None:
                scope["route"] = _EVENT_READ
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _held_answer(self, scope: Scope) -> Response | None:
        event_id = scope["path"][len(self._events) :]
        state = scope.get("state")
        if len(event_id) != _CANONICAL_ID_LENGTH or not state:
            return None
        if_none_match: str | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                return None
            if name == b"if-none-match" and if_none_match is None:
                if_none_match = value.decode("latin-1")
        held = state["event_caches"].events.held(event_id)
        if held is None or held.value is None:
            return None
        record: EventRecord = held.value
        if newest_known(if_none_match, record.id) > record.version:
            return None
        return event_response(record, if_none_match)
