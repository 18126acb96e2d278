"""The OpenAPI document says what the wire says: every error is ``application/problem+json``.

Why rewrite FastAPI's schema: FastAPI declares each 422 as ``application/json`` with its own
``HTTPValidationError`` shape and declares no other error at all, while refstack answers every error (its own,
FastAPI's, and Nginx's 413/429/502/504) as an RFC 9457 problem. A client generated from the schema, and the
contract fuzzer (tests/security/test_contract_fuzz.py), would then read our answers as violations. So every
operation's 422 and a ``default`` response name one ``Problem`` schema and the problem media type. Operations
behind a role guard say so in ``x-required-role``, found by walking the route's dependencies, which is how the
function-level authorization test (tests/security/test_api5_function_level_authorization.py) finds every
organizer-only route without a hand-kept list. Built once, on the first request for the schema, and cached.
See notes/security.md, "Fuzzing the contract" and "Function-level authorization".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from app.api.deps import require_organizer
from app.api.problems import MEDIA_TYPE
from app.api.rate_limits import RateLimit

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; ``errors`` lists the fields of a 422.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": ["string", "null"]},
        "request_id": {"type": ["string", "null"]},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})
ROLE_GUARDS = {require_organizer: "organizer"}
ROLE_EXTENSION = "x-required-role"
T = TypeVar("T")


def problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {MEDIA_TYPE: {"schema": PROBLEM_REF}}}


def with_problem_responses(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with every operation's 422, its other bodiless errors and a ``default`` declared as problems."""
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = problem_response("The request failed validation (see ``errors``).")
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400 and not response.get("content"):
                    responses[status] = problem_response(response.get("description") or "An error.")
            responses["default"] = problem_response("Any other error, as RFC 9457 problem details.")
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    return document


def first_in_tree(dependant: Dependant, pick: Callable[[Callable[..., Any]], T | None]) -> T | None:
    """The first dependency in a route's tree that ``pick`` recognises, found by walking it (so the schema cannot
    drift from code)."""
    for sub in dependant.dependencies:
        found = pick(sub.call) if sub.call is not None else None
        if found is not None or (found := first_in_tree(sub, pick)) is not None:
            return found
    return None


def required_role(dependant: Dependant) -> str | None:
    """The role a route's dependency tree demands."""
    return first_in_tree(dependant, ROLE_GUARDS.get)


def rate_limit(dependant: Dependant) -> RateLimit | None:
    """The per-account rate limit a route's dependency tree enforces."""
    return first_in_tree(dependant, lambda call: call if isinstance(call, RateLimit) else None)


def operations(document: dict[str, Any], routes: list[BaseRoute]) -> Iterator[tuple[Dependant, dict[str, Any]]]:
    """Each schema operation with its route's dependency tree. ``iter_route_contexts`` is how FastAPI's own schema
    builder sees included routers: with their full paths."""
    for route in iter_route_contexts(routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            yield route.dependant, document["paths"][route.path_format][method.lower()]


def with_required_roles(document: dict[str, Any], routes: list[BaseRoute]) -> dict[str, Any]:
    """Mark each operation whose dependencies include a role guard with ``x-required-role``."""
    for dependant, operation in operations(document, routes):
        if (role := required_role(dependant)) is not None:
            operation[ROLE_EXTENSION] = role
    return document


def rate_limited_response(limit: RateLimit) -> dict[str, Any]:
    """The per-account 429 (app/api/rate_limits.py). Only ``Retry-After`` is always there: Nginx's per-IP 429 on the
    same path carries it but not the ``RateLimit`` fields."""
    return {
        **problem_response(f"This account is over its {limit.name!r} quota, or this address over the edge's."),
        "headers": {
            "Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"}},
            "RateLimit-Policy": {"description": 'e.g. ``"holds";q=120;w=60``', "schema": {"type": "string"}},
            "RateLimit": {"description": 'e.g. ``"holds";r=0;t=1``', "schema": {"type": "string"}},
        },
    }


def with_rate_limit_responses(document: dict[str, Any], routes: list[BaseRoute]) -> dict[str, Any]:
    """Declare the 429 of each operation whose dependencies include a per-account rate limit."""
    for dependant, operation in operations(document, routes):
        if (limit := rate_limit(dependant)) is not None:
            operation["responses"]["429"] = rate_limited_response(limit)
    return document


def operation_id(route: APIRoute) -> str:
    """An operation's ``operationId``: its resource tag and its route function's name (``holds_place``,
    ``bookings_read``), which is what a generated client names the call. FastAPI's default
    (``book_api_v1_bookings_post``) repeats the path and method; the function name alone is not unique (several
    resources have a ``read``), while one router's functions are one module's locals, so tag and name are."""
    name = route.name.rstrip("_")  # ``list_`` is named so only to spare the builtin
    return f"{route.tags[0]}_{name}" if route.tags else name


def install_problem_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that declares problem responses (and caches like FastAPI's own)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
            )
            declared = with_problem_responses(document)
            app.openapi_schema = with_rate_limit_responses(with_required_roles(declared, app.routes), app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
