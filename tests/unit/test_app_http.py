"""The app skeleton in-process, lifespan included, with every dependency unreachable: health, problem details,
request ids, access logs and metrics. No service runs; ports are closed or deaf.

See notes/fastapi.md ("Readiness", "Problem details", "Request ids", "Metrics with several workers").
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import Query, Request
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import QueuePool
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from app.main import create_app
from app.observability.metrics import MULTIPROC_ENV
from app.settings import Settings
from tests.in_process_app import Running, running

READY_BOUND_S = 2.0
CHECK_TIMEOUT_S = 0.5
MAX_BODY = 64
REPO = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    """A loopback port nobody listens on: bound to learn a free number, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def deaf_port() -> Iterator[int]:
    """A port that listens but never accepts: the kernel completes handshakes, nothing ever answers (a frozen
    server, like psycopg's deaf_listen)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def unreachable_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "database_url": f"postgresql+asyncpg://app:app@127.0.0.1:{closed_port()}/refstack",
        "replica_url": f"postgresql+asyncpg://app:app@127.0.0.1:{closed_port()}/refstack",
        "redis_url": f"redis://127.0.0.1:{closed_port()}/0",
        "amqp_url": f"amqp://guest:guest@127.0.0.1:{closed_port()}/",
        "db_connect_timeout_s": CHECK_TIMEOUT_S,
        "redis_timeout_s": CHECK_TIMEOUT_S,
        "amqp_timeout_s": CHECK_TIMEOUT_S,
        "health_check_timeout_s": CHECK_TIMEOUT_S,
        "max_body_bytes": MAX_BODY,
        "sweeper_enabled": False,  # these tests are about the HTTP layer; the sweeper has its own
        "reconciler_enabled": False,  # and so has the payment reconciler
        "outbox_relay_enabled": False,  # and the outbox relay
    }
    return Settings.model_validate(values | overrides)


class DriverError(Exception):
    """What SQLAlchemy's asyncpg adapter puts in ``DBAPIError.orig``: the server's SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


class Order(BaseModel):
    seats: int


@pytest.fixture
async def served() -> AsyncIterator[Running]:
    async with running(unreachable_settings()) as serving:
        app = serving.app

        @app.get("/test/boom")
        async def boom() -> None:
            raise RuntimeError("secret-internal-detail")

        @app.get("/test/busy")
        async def busy() -> None:
            raise PoolTimeoutError("QueuePool limit of size 5 overflow 5 reached")

        @app.get("/test/sqlstate/{code}")
        async def server_error(code: str) -> None:
            raise DBAPIError("UPDATE event …", None, DriverError(code))

        @app.get("/test/page")
        async def page(limit: int = Query(ge=1, le=100)) -> dict[str, int]:
            return {"limit": limit}

        @app.post("/test/orders")
        async def order(body: Order, request: Request) -> dict[str, int]:
            request.app.state.orders_seen = getattr(request.app.state, "orders_seen", 0) + 1
            return {"seats": body.seats}

        yield serving


async def test_live_answers_without_touching_dependencies(served: Running) -> None:
    response = await served.client.get("/health/live")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_ready_reports_each_dependency_down_within_the_bound(served: Running) -> None:
    began = time.monotonic()
    response = await served.client.get("/health/ready")
    assert time.monotonic() - began < READY_BOUND_S
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert set(body["checks"]) == {"postgres", "replica", "redis", "rabbitmq"}
    for name, check in body["checks"].items():
        assert check["status"] == "down", name
        assert check["error"], name
        assert isinstance(check["latency_ms"], float), name


async def test_ready_is_bounded_when_postgres_and_redis_never_answer(deaf_port: int) -> None:
    """Connect timeouts far above the check budget: only the per-check deadline can end these waits."""
    settings = unreachable_settings(
        database_url=f"postgresql+asyncpg://app:app@127.0.0.1:{deaf_port}/refstack",
        redis_url=f"redis://127.0.0.1:{deaf_port}/0",
        db_connect_timeout_s=30.0,
        redis_timeout_s=30.0,
    )
    async with running(settings) as serving:
        for _ in range(3):  # later rounds prove the earlier ones left nothing stuck in the pool
            began = time.monotonic()
            response = await serving.client.get("/health/ready")
            elapsed = time.monotonic() - began
            assert elapsed < READY_BOUND_S
            checks = response.json()["checks"]
            for name in ("postgres", "redis"):
                assert checks[name]["status"] == "down", name
                assert checks[name]["error"].startswith("TimeoutError"), checks[name]
                assert CHECK_TIMEOUT_S * 1000 * 0.9 <= checks[name]["latency_ms"] < READY_BOUND_S * 1000, name
            pool = serving.state["engines"].primary.pool
            assert isinstance(pool, QueuePool)
            assert pool.checkedout() == 0


async def test_app_starts_and_stops_promptly_with_every_dependency_down() -> None:
    async with running(unreachable_settings()) as serving:
        assert (await serving.client.get("/health/live")).status_code == 200
        assert not serving.state["amqp"].connected
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 1.0  # closing cancels the broker reconnect loop instead of waiting it out


def assert_problem(response: httpx.Response, status: int, kind: str, instance: str) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["type"] == f"https://refstack.dev/problems/{kind}"
    assert body["status"] == status
    assert body["instance"] == instance
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


async def test_unknown_path_is_a_404_problem(served: Running) -> None:
    assert_problem(await served.client.get("/nowhere"), 404, "not-found", "/nowhere")


async def test_wrong_method_is_a_405_problem_keeping_allow(served: Running) -> None:
    response = await served.client.delete("/health/live")
    assert_problem(response, 405, "method-not-allowed", "/health/live")
    assert response.headers["allow"] == "GET"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/v1/events", "GET, POST"),  # two routes share the path; Starlette alone would say GET
        ("PUT", "/api/v1/events/0b6c5e0e-4c1f-4a8e-9d3e-1b2c3d4e5f60", "GET, PATCH"),
        ("POST", "/api/v1/events/0b6c5e0e-4c1f-4a8e-9d3e-1b2c3d4e5f60/webhook", "DELETE, GET, PUT"),
        ("TRACE", "/api/v1/auth/token", "POST"),
    ],
)
async def test_a_405_allows_every_method_of_the_path(served: Running, method: str, path: str, allow: str) -> None:
    response = await served.client.request(method, path)
    assert_problem(response, 405, "method-not-allowed", path)
    assert response.headers["allow"] == allow


async def test_validation_error_is_a_422_problem_listing_errors(served: Running) -> None:
    body = assert_problem(await served.client.get("/test/page?limit=abc"), 422, "validation-error", "/test/page")
    assert body["errors"] == [
        {
            "loc": ["query", "limit"],
            "msg": "Input should be a valid integer, unable to parse string as an integer",
            "type": "int_parsing",
        }
    ]


async def test_declared_oversize_body_is_refused_at_once(served: Running) -> None:
    response = await served.client.post("/test/orders", json={"seats": 1, "pad": "x" * MAX_BODY})
    assert_problem(response, 413, "content-too-large", "/test/orders")
    assert getattr(served.app.state, "orders_seen", 0) == 0


async def test_streamed_oversize_body_is_counted_and_refused(served: Running) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"seats": 1, "pad": "'
        for _ in range(4):
            yield b"x" * (MAX_BODY // 2)
        yield b'"}'

    response = await served.client.post("/test/orders", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "content-too-large", "/test/orders")
    assert getattr(served.app.state, "orders_seen", 0) == 0


async def test_body_under_the_limit_passes(served: Running) -> None:
    response = await served.client.post("/test/orders", json={"seats": 2})
    assert (response.status_code, response.json()) == (200, {"seats": 2})


async def test_an_exhausted_connection_pool_sheds_load_with_a_retryable_503(served: Running) -> None:
    response = await served.client.get("/test/busy")
    body = assert_problem(response, 503, "database-busy", "/test/busy")
    assert response.headers["retry-after"] == "1"
    assert "QueuePool" not in str(body)


@pytest.mark.parametrize(
    ("sqlstate", "status", "kind"),
    [("55P03", 409, "resource-busy"), ("57014", 503, "database-busy"), ("23505", 500, "internal-error")],
)
async def test_server_timeouts_are_clear_problems_and_other_database_errors_stay_500s(
    served: Running, sqlstate: str, status: int, kind: str
) -> None:
    response = await served.client.get(f"/test/sqlstate/{sqlstate}")
    assert_problem(response, status, kind, f"/test/sqlstate/{sqlstate}")
    assert ("retry-after" in response.headers) == (status == 503)
    assert "UPDATE event" not in response.text


async def test_unhandled_error_is_a_generic_500_problem_logged_with_the_request_id(served: Running) -> None:
    with capture_logs(processors=[merge_contextvars]) as logs:
        response = await served.client.get("/test/boom", headers={"x-request-id": "crash-1"})
    body = assert_problem(response, 500, "internal-error", "/test/boom")
    assert "secret-internal-detail" not in response.text
    assert "RuntimeError" not in response.text
    assert body["request_id"] == "crash-1"
    [error] = [line for line in logs if line["event"] == "unhandled_error"]
    assert error["request_id"] == "crash-1"
    assert error["log_level"] == "error"
    [access] = [line for line in logs if line["event"] == "request"]
    assert (access["status"], access["route"], access["request_id"]) == (500, "/test/boom", "crash-1")


async def test_valid_request_id_is_echoed(served: Running) -> None:
    response = await served.client.get("/health/live", headers={"x-request-id": "edge-4f2a.1_b"})
    assert response.headers["x-request-id"] == "edge-4f2a.1_b"


@pytest.mark.parametrize("incoming", ["has spaces", "x" * 129, "semi;colon"])
async def test_invalid_request_id_is_replaced(served: Running, incoming: str) -> None:
    response = await served.client.get("/health/live", headers={"x-request-id": incoming})
    replaced = response.headers["x-request-id"]
    assert replaced != incoming
    assert len(replaced) == 32


async def test_missing_request_id_is_made(served: Running) -> None:
    first = (await served.client.get("/health/live")).headers["x-request-id"]
    second = (await served.client.get("/health/live")).headers["x-request-id"]
    assert first != second


async def test_one_access_line_per_request_carries_route_template_and_id(served: Running) -> None:
    with capture_logs(processors=[merge_contextvars]) as logs:
        await served.client.get("/test/page?limit=7", headers={"x-request-id": "req-7"})
    [line] = logs
    assert line["event"] == "request"
    assert {k: line[k] for k in ("method", "route", "path", "status", "request_id")} == {
        "method": "GET",
        "route": "/test/page",
        "path": "/test/page",
        "status": 200,
        "request_id": "req-7",
    }
    assert line["duration_ms"] >= 0


async def test_logs_are_json_lines_on_stdout(served: Running, capfd: pytest.CaptureFixture[str]) -> None:
    await served.client.get("/health/live", headers={"x-request-id": "json-1"})
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    [access] = [line for line in lines if line.get("request_id") == "json-1"]
    assert (access["event"], access["level"], access["status"]) == ("request", "info", 200)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", access["timestamp"])  # ISO 8601, UTC, µs
    stamped = datetime.fromisoformat(access["timestamp"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - stamped).total_seconds()) < 60


async def test_metrics_count_requests_by_route_template(served: Running) -> None:
    await served.client.get("/test/page?limit=3")
    await served.client.get("/test/page?limit=4")
    await served.client.get("/nowhere/at/all")
    response = await served.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'http_requests_total{method="GET",route="/test/page",status="200"} 2.0' in text
    assert 'http_requests_total{method="GET",route="<unmatched>",status="404"} 1.0' in text
    assert 'http_request_duration_seconds_count{method="GET",route="/test/page",status="200"} 2.0' in text
    assert "/nowhere/at/all" not in text


async def test_each_app_counts_on_its_own_registry() -> None:
    """With the global registry, the second create_app would fail with "Duplicated timeseries"."""
    first, second = create_app(unreachable_settings()), create_app(unreachable_settings())
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://first") as to_first,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://second") as to_second,
    ):
        await to_first.get("/health/live")
        assert 'route="/health/live"' in (await to_first.get("/metrics")).text
        assert 'route="/health/live"' not in (await to_second.get("/metrics")).text


WORKER = """
import asyncio, httpx
from app.main import create_app
from tests.in_process_app import Running, running

async def main() -> None:
    app = create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://worker") as client:
        for _ in range(3):
            assert (await client.get("/health/live")).status_code == 200

asyncio.run(main())
"""


async def test_multiprocess_metrics_sum_every_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes (like two uvicorn workers) count into one directory; /metrics in any process sums them."""
    environment = os.environ | {MULTIPROC_ENV: str(tmp_path), "REFSTACK_LOG_JSON": "true"}
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            cwd=REPO,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for worker in workers:
        _, stderr = await asyncio.wait_for(worker.communicate(), timeout=60)
        assert worker.returncode == 0, stderr.decode()
    assert len(list(tmp_path.glob("counter_*.db"))) == 2

    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    async with running(unreachable_settings()) as serving:
        text = (await serving.client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/health/live",status="200"} 6.0' in text
