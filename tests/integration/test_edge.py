"""Through Nginx, with every real service up: what any client sees first. See notes/nginx.md."""

from __future__ import annotations

import json
import re

from stack.native.stack import NativeStack
from tests.polling import wait_for
from tests.probes import http, ready

DEPENDENCIES = {"postgres", "replica", "redis", "rabbitmq"}


def test_ready_names_every_dependency_up(stack: NativeStack) -> None:
    status, body, _ = ready(stack)
    assert status == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == DEPENDENCIES
    assert all(check["status"] == "up" for check in body["checks"].values())


def test_live_needs_no_dependency(stack: NativeStack) -> None:
    status, _, body = http("GET", f"{stack.nginx.url}/health/live")
    assert status == 200
    assert json.loads(body)["status"] == "ok"


def test_request_id_is_echoed_when_given(stack: NativeStack) -> None:
    status, headers, _ = http("GET", f"{stack.nginx.url}/health/live", headers={"X-Request-ID": "trace-abc.123"})
    assert status == 200
    assert headers["X-Request-ID"] == "trace-abc.123"


def test_request_id_is_minted_when_missing_or_malformed(stack: NativeStack) -> None:
    _, plain, _ = http("GET", f"{stack.nginx.url}/health/live")
    _, hostile, _ = http("GET", f"{stack.nginx.url}/health/live", headers={"X-Request-ID": "bad id\t<script>"})
    for headers in (plain, hostile):
        assert re.fullmatch(r"[A-Za-z0-9._-]{16,128}", headers["X-Request-ID"])
    assert plain["X-Request-ID"] != hostile["X-Request-ID"]


def test_request_id_reaches_the_app_log(stack: NativeStack) -> None:
    http("GET", f"{stack.nginx.url}/health/live", headers={"X-Request-ID": "log-me-7f3a"})
    log = stack.layout.base / "logs" / "app.log"
    wait_for(lambda: '"request_id": "log-me-7f3a"' in log.read_text(), timeout_s=5, what="the request's log line")


def test_unknown_route_is_problem_json_404(stack: NativeStack) -> None:
    status, headers, body = http("GET", f"{stack.nginx.url}/api/v1/no-such-thing")
    assert status == 404
    assert headers["Content-Type"].startswith("application/problem+json")
    problem = json.loads(body)
    assert problem["status"] == 404
    assert problem["type"].startswith("https://")
    assert "Traceback" not in body.decode()


def test_body_over_one_mib_is_413_problem_json_from_nginx(stack: NativeStack) -> None:
    status, headers, body = http(
        "POST",
        f"{stack.nginx.url}/api/v1/anything",
        body=b"x" * (2 * 1024 * 1024),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert status == 413
    assert headers["Content-Type"].startswith("application/problem+json")
    assert json.loads(body)["status"] == 413
    assert json.loads(body)["type"].endswith("/content-too-large")  # the same kind the app uses (RFC 9110 name)


def test_security_headers_and_no_version_tokens(stack: NativeStack) -> None:
    _, headers, _ = http("GET", f"{stack.nginx.url}/health/live")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Server"] == "nginx"  # server_tokens off: no version number
    assert "X-Powered-By" not in headers


def test_metrics_are_prometheus_text_summed_over_workers(stack: NativeStack) -> None:
    for _ in range(6):
        http("GET", f"{stack.nginx.url}/health/live")
    status, headers, body = http("GET", f"{stack.app.url}/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert "# TYPE" in body.decode()
