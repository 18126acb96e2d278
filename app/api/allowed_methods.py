"""A 405 names every method its path supports in ``Allow``, as RFC 9110 (section 15.5.6) requires.

Why not Starlette's own header: the router stops at the first route whose path matches and answers with that
route's methods alone. ``GET /events`` and ``POST /events`` are two routes, so ``DELETE /api/v1/events`` would say
``Allow: GET`` and a client (or the contract fuzzer) would conclude that POST is refused too. This handler asks
every route of the app whether the path is its own and lists the union. See notes/rest_design.md, "Methods".
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.routing import iter_route_contexts
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from app.api.problems import Problem


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route serves at this scope's path (a route whose path matches but not its method answers
    ``Match.PARTIAL``), sorted. ``iter_route_contexts`` walks included routers as FastAPI's own matching sees them
    (with their prefixes); a mount has no methods and is skipped."""
    methods: set[str] = set()
    for route in iter_route_contexts(routes):
        if route.methods and route.matches(scope)[0] is not Match.NONE:
            methods |= route.methods
    return sorted(methods)


async def _on_method_not_allowed(request: Request, exc: Exception) -> Response:
    allow = ", ".join(allowed_methods(request.app.router.routes, request.scope))
    return Problem(405, headers={"Allow": allow}).response(request.scope)


def install_allowed_methods(app: FastAPI) -> None:
    """Handle every 405 here (a status handler wins over the class handler for ``HTTPException``)."""
    app.add_exception_handler(405, _on_method_not_allowed)
