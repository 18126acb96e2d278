"""API9:2023 Improper inventory management: what the edge exposes is what the OpenAPI document says, and no more.

The document lists only the versioned API (its index at ``/api/v1`` too) and the health checks; every route the
app object serves is either in it or one of the few documented non-API routes (``NOT_IN_SCHEMA``, each with its
reason); through Nginx, the operational and simulator endpoints and unversioned or future-version shadows of the
API are 404.
See notes/security.md, "Inventory".
"""

from __future__ import annotations

import pytest
from fastapi.routing import iter_route_contexts

from app.main import create_app
from app.settings import Settings
from stack.native.stack import NativeStack
from tests.api_users import call
from tests.probes import http

NOT_IN_SCHEMA = {
    "/": "the landing page for people (its JSON answer is GET /api/v1's, which is documented)",
    "/openapi.json": "the document itself",
    "/docs": "the offline Swagger UI page",
    "/docs/assets/{path}": "its static files (a mount)",
    "/metrics": "Prometheus scrapes each app instance on its own port; the edge answers 404",
}


def served_paths() -> set[str]:
    """Every path the app object routes, included routers and mounts too (the app is built, never started)."""
    return {route.path_format or "" for route in iter_route_contexts(create_app(Settings()).routes)}


def test_the_document_lists_the_versioned_api_and_health_and_the_app_serves_nothing_else(stack: NativeStack) -> None:
    documented = set(call(stack, "GET", "/openapi.json")[2]["paths"])
    assert all(path == "/api/v1" or path.startswith(("/api/v1/", "/health/")) for path in documented), documented
    assert served_paths() - documented == set(NOT_IN_SCHEMA)


@pytest.mark.parametrize(
    "path",
    [
        "/metrics",
        "/_sim/behaviour",
        "/_sim/stats",
        "/_sim/charges",
        "/events",
        "/v1/events",
        "/api/events",
        "/api/v2/events",
        "/api/v0/events",
    ],
)
def test_operational_simulator_and_shadow_paths_are_404_at_the_edge(stack: NativeStack, path: str) -> None:
    status, headers, _ = http("GET", f"{stack.nginx.url}{path}")
    assert status == 404
    assert headers["Content-Type"] == "application/problem+json"


def test_metrics_still_answer_on_the_apps_own_port(stack: NativeStack) -> None:
    """The operator's scrape path works; only the public edge refuses it."""
    status, _, body = http("GET", f"{stack.app.url}/metrics")
    assert (status, b"# TYPE" in body) == (200, True)
