"""The front door: ``/`` is a small static page for people, ``GET /api/v1`` a JSON index of the API for programs.

Why: the root URL is the first thing anyone opens, and a 404 there says nothing. A person gets what this is, the
demo accounts, the links to the docs and the fault commands to try; a REST client gets one well-known URL to start
from, listing every resource and the methods it answers (``/`` with ``Accept: application/json`` gives the same
index; either answer carries ``Vary: Accept``). The index is read from the app's own OpenAPI document, so it can
neither miss a route nor list one the app does not serve. The page is the static file ``landing.html`` beside
this module: no script at all, its one inline ``<style>`` allowed by its hash in a CSP that allows nothing else.
See notes/rest_design.md, "Entry point", and notes/security.md, "Headers, CORS and docs".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from app.api.docs import csp_hash

API_PREFIX = "/api/v1"
LANDING_PAGE = Path(__file__).with_name("landing.html")
_INLINE_STYLE = re.compile(rb"<style>(.*?)</style>", re.DOTALL)
_METHOD_ORDER = ("GET", "POST", "PUT", "PATCH", "DELETE")


class Link(BaseModel):
    href: str


class Resource(BaseModel):
    href: str
    templated: bool  # the href holds {placeholders} to fill in (RFC 6570 level 1)
    methods: list[str]


class ApiIndex(BaseModel):
    title: str
    links: dict[str, Link]
    resources: list[Resource]


def landing_csp(page: bytes) -> str:
    """Nothing may load or run; only the page's own inline styles, each pinned by its hash."""
    styles = " ".join(csp_hash(style) for style in _INLINE_STYLE.findall(page))
    return f"default-src 'none'; style-src {styles}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def prefers_json(accept: str) -> bool:
    """Whether ``Accept`` ranks ``application/json`` above ``text/html`` by q-value (ties, wildcards: the page)."""
    quality = {"application/json": 0.0, "text/html": 0.0}
    for entry in accept.split(","):
        media, *parameters = (part.strip() for part in entry.split(";"))
        if media.lower() not in quality:
            continue
        q = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[media.lower()] = max(quality[media.lower()], q)
    return quality["application/json"] > quality["text/html"]


def api_index(openapi: dict[str, Any]) -> ApiIndex:
    """Every documented path under the API prefix, in the document's order, with the methods it answers."""
    paths: dict[str, dict[str, Any]] = openapi.get("paths", {})
    resources = [
        Resource(
            href=path,
            templated="{" in path,
            methods=[method for method in _METHOD_ORDER if method.lower() in operations],
        )
        for path, operations in paths.items()
        if path.startswith(f"{API_PREFIX}/")
    ]
    return ApiIndex(
        title="refstack API v1",
        links={
            "self": Link(href=API_PREFIX),
            "openapi": Link(href="/openapi.json"),
            "docs": Link(href="/docs"),
        },
        resources=resources,
    )


def build_entry_router() -> APIRouter:
    """``/`` (page or index by ``Accept``) and ``GET /api/v1`` (the index); the page is read once, here."""
    router = APIRouter()
    page = LANDING_PAGE.read_bytes()
    page_headers = {"Content-Security-Policy": landing_csp(page), "Vary": "Accept"}

    @router.get(API_PREFIX, response_model=ApiIndex, tags=["index"])
    async def index(request: Request) -> ApiIndex:
        """The entry point for API clients: every resource under /api/v1 and the methods it answers."""
        return api_index(request.app.openapi())

    @router.get("/", include_in_schema=False)
    async def front_door(request: Request) -> Response:
        if prefers_json(request.headers.get("accept", "")):
            return JSONResponse(api_index(request.app.openapi()).model_dump(), headers={"Vary": "Accept"})
        return HTMLResponse(page, headers=page_headers)

    return router
