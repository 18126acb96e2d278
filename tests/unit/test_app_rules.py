"""Pure rules of the app skeleton: request-id acceptance, readiness verdicts, problem kinds, DSN rewriting.

See notes/fastapi.md.
"""

from __future__ import annotations

import pytest
from pydantic import PostgresDsn

from app.api.health import DependencyCheck, overall
from app.api.problems import kind_and_title
from app.db.engines import asyncpg_url
from app.observability.request_id import accept_or_make
from app.settings import Settings


@pytest.mark.parametrize("incoming", ["abc", "A.b_c-9", "x" * 128, "0f3c2e7d9a8b4c1d"])
def test_safe_request_ids_are_kept(incoming: str) -> None:
    assert accept_or_make(incoming) == incoming


@pytest.mark.parametrize("incoming", [None, "", "x" * 129, "has space", "line\nbreak", "abc\n", "ünïcode", "a/b"])
def test_unsafe_request_ids_are_replaced_by_uuid_hex(incoming: str | None) -> None:
    made = accept_or_make(incoming)
    assert made != incoming
    assert len(made) == 32
    int(made, 16)


def _check(status: str) -> DependencyCheck:
    return DependencyCheck.model_validate({"status": status, "latency_ms": 1.0, "error": None})


@pytest.mark.parametrize(
    ("postgres", "replica", "redis", "rabbitmq", "verdict"),
    [
        ("up", "up", "up", "up", "ok"),
        ("up", "down", "up", "up", "degraded"),
        ("up", "up", "down", "up", "degraded"),
        ("up", "up", "up", "down", "degraded"),
        ("up", "down", "down", "down", "degraded"),
        ("down", "up", "up", "up", "down"),
        ("down", "down", "down", "down", "down"),
    ],
)
def test_only_the_primary_makes_the_instance_unready(
    postgres: str, replica: str, redis: str, rabbitmq: str, verdict: str
) -> None:
    checks = {"postgres": postgres, "replica": replica, "redis": redis, "rabbitmq": rabbitmq}
    assert overall({name: _check(status) for name, status in checks.items()}) == verdict


@pytest.mark.parametrize(
    ("status", "kind", "title"),
    [
        (404, "not-found", "Not Found"),
        (405, "method-not-allowed", "Method Not Allowed"),
        (409, "conflict", "Conflict"),
        (413, "content-too-large", "Content Too Large"),
        (422, "validation-error", "Request Validation Failed"),
        (500, "internal-error", "Internal Server Error"),
        (599, "http-599", "HTTP 599"),
    ],
)
def test_problem_kinds_are_stable_slugs(status: int, kind: str, title: str) -> None:
    assert kind_and_title(status) == (kind, title)


@pytest.mark.parametrize(
    "dsn",
    ["postgresql://app:s3cret@db:5432/refstack", "postgresql+asyncpg://app:s3cret@db:5432/refstack"],
)
def test_any_postgres_scheme_is_driven_by_asyncpg(dsn: str) -> None:
    assert asyncpg_url(PostgresDsn(dsn)) == "postgresql+asyncpg://app:s3cret@db:5432/refstack"


def test_cors_allow_list_takes_exact_origins_only() -> None:
    """notes/security.md, "Headers, CORS and docs": no wildcard, no path; empty (no CORS) by default."""
    assert Settings().cors_allow_origins == []
    allowed = ["https://tickets.example", "http://localhost:5173"]
    assert Settings(cors_allow_origins=allowed).cors_allow_origins == allowed
    for wrong in ("*", "https://tickets.example/", "tickets.example", "https://*.example"):
        with pytest.raises(ValueError, match="exact origins"):
            Settings(cors_allow_origins=[wrong])
