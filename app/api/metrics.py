"""``GET /metrics``: Prometheus text for whatever registry the app exposes (its own, or all workers summed).

A sync endpoint on purpose: in multiprocess mode rendering reads one file per worker, and FastAPI runs sync
endpoints in its thread pool, off the event loop. See notes/fastapi.md, "Metrics with several workers".
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def build_metrics_router(registry: CollectorRegistry) -> APIRouter:
    router = APIRouter(tags=["observability"])

    @router.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
