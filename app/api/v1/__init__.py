"""The versioned API: every resource router mounts under ``/api/v1``. See notes/rest_design.md."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.v1.auth import build_auth_router
from app.api.v1.bookings import build_bookings_router
from app.api.v1.events import build_events_router
from app.api.v1.holds import build_holds_router
from app.api.v1.notifications import build_notifications_router
from app.api.v1.search import build_search_router
from app.api.v1.webhooks import build_webhooks_router

API_PREFIX = "/api/v1"


def build_api_router() -> APIRouter:
    """A fresh router per app (nothing at import time); each resource module adds its own router here."""
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(build_auth_router())
    api.include_router(build_events_router())
    api.include_router(build_holds_router())
    api.include_router(build_bookings_router())
    api.include_router(build_webhooks_router())
    api.include_router(build_search_router())
    api.include_router(build_notifications_router())
    return api
