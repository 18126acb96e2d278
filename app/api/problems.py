"""Every error leaves as RFC 9457 ``application/problem+json``: one shape clients can rely on, never a trace.

Why one exception class: later code raises ``Problem(409, kind="seat-not-available", detail=...)`` and gets the
same body, type URI and request id as the framework's own 404/405/422, because all of them go through
``Problem.response``. ``type`` is a stable URI per kind of problem (clients switch on it, not on ``title``);
``instance`` is the request path; ``request_id`` ties the answer to our log lines. See notes/fastapi.md,
"Problem details".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from app.db.engines import DatabaseUnreachable
from app.db.errors import LOCK_NOT_AVAILABLE, QUERY_CANCELED, sqlstate_of
from app.observability.request_id import request_id_of

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://refstack.dev/problems/"

# Kinds whose RFC 9110 name differs from Python's HTTPStatus phrase, or that we name by meaning.
_KINDS: dict[int, tuple[str, str]] = {
    413: ("content-too-large", "Content Too Large"),
    422: ("validation-error", "Request Validation Failed"),
    500: ("internal-error", "Internal Server Error"),
}


def kind_and_title(status: int) -> tuple[str, str]:
    """The default kind slug and title for a status: ``404`` → ``("not-found", "Not Found")``."""
    if status in _KINDS:
        return _KINDS[status]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return f"http-{status}", f"HTTP {status}"
    return re.sub(r"[^a-z0-9]+", "-", phrase.lower()).strip("-"), phrase


class Problem(HTTPException):
    """An error answer; ``kind`` becomes ``type`` = ``https://refstack.dev/problems/<kind>``."""

    def __init__(
        self,
        status: int,
        *,
        kind: str | None = None,
        title: str | None = None,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        default_kind, default_title = kind_and_title(status)
        self.kind = kind or default_kind
        self.title = title or default_title
        self.extensions = dict(extensions or {})
        super().__init__(status_code=status, detail=detail or self.title, headers=dict(headers or {}))

    @classmethod
    def from_http_exception(cls, exc: HTTPException) -> Problem:
        return cls(exc.status_code, detail=str(exc.detail), headers=exc.headers)

    def response(self, scope: Scope) -> Response:
        body = {
            "type": TYPE_BASE + self.kind,
            "title": self.title,
            "status": self.status_code,
            "detail": self.detail,
            "instance": scope.get("path"),
            "request_id": request_id_of(scope),
            **self.extensions,
        }
        return JSONResponse(body, status_code=self.status_code, headers=self.headers, media_type=MEDIA_TYPE)


def _validation_problem(exc: RequestValidationError) -> Problem:
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return Problem(
        422,
        detail=f"{len(errors)} field(s) failed validation; see errors.",
        extensions={"errors": errors},
    )


# Starlette types handlers as taking any Exception; each is registered for exactly the class it casts to.
async def _on_http_exception(request: Request, exc: Exception) -> Response:
    problem = exc if isinstance(exc, Problem) else Problem.from_http_exception(cast(HTTPException, exc))
    return problem.response(request.scope)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    return _validation_problem(cast(RequestValidationError, exc)).response(request.scope)


def install_problem_handlers(app: FastAPI) -> None:
    """Render framework errors (404, 405 with its ``Allow``, 422) and raised ``Problem``s as problem details."""
    app.add_exception_handler(HTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(PoolTimeoutError, _on_database_busy)
    app.add_exception_handler(DBAPIError, _on_database_timeout)
    app.add_exception_handler(DatabaseUnreachable, _on_connect_failure)


def _database_busy() -> Problem:
    return Problem(
        503,
        kind="database-busy",
        detail="The service is too busy to take this request now; retry shortly.",
        headers={"Retry-After": "1"},
    )


def _database_unavailable() -> Problem:
    return Problem(
        503,
        kind="database-unavailable",
        detail="The database cannot be reached right now; retry shortly.",
        headers={"Retry-After": "1"},
    )


async def _on_connect_failure(request: Request, exc: Exception) -> Response:
    """No connection could be opened (see ``app.db.engines.DatabaseUnreachable``): the primary is down or moving
    (failover). A retryable 503, never a 500."""
    return _database_unavailable().response(request.scope)


async def _on_database_busy(request: Request, exc: Exception) -> Response:
    """Every pooled connection stayed busy for ``db_pool_timeout_s``: shed load with a retryable 503, not a 500."""
    return _database_busy().response(request.scope)


async def _on_database_timeout(request: Request, exc: Exception) -> Response:
    """The per-transaction server timeouts (see app/services/unit_of_work.py) and lost connections as problems;
    anything else stays a 500 (re-raised to ``UnhandledErrorMiddleware``). A lock wait is a conflict with another
    writer of the same row: 409 ``resource-busy``. A statement that ran too long is overload: retryable 503
    ``database-busy``. A connection that died under the request (server stopped, failover) is a retryable 503
    ``database-unavailable``: SQLAlchemy has already invalidated the pool, so the retry gets a fresh connection."""
    error = cast(DBAPIError, exc)
    if error.connection_invalidated:
        return _database_unavailable().response(request.scope)
    sqlstate = sqlstate_of(error)
    if sqlstate == LOCK_NOT_AVAILABLE:
        busy = Problem(409, kind="resource-busy", detail="Someone else is changing this right now; retry shortly.")
        return busy.response(request.scope)
    if sqlstate == QUERY_CANCELED:
        return _database_busy().response(request.scope)
    raise exc
