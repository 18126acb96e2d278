"""OWASP API8:2023, security misconfiguration: headers, CORS, version tokens, error bodies and the docs page.

Every answer carries the security headers exactly once, whoever made it (the app sets them; the edge fills them
in on its own error pages); CORS answers only origins on the allow-list (tests/conftest.py allows
``https://tickets.example``); no version token or stack trace leaves; ``/docs`` loads nothing from another host.
See notes/security.md, "Headers, CORS and docs".
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

import httpx
import pytest

from app.api.docs import SWAGGER_UI_DIR
from stack.native.stack import NativeStack
from tests.probes import http

API_CSP = "default-src 'none'; frame-ancestors 'none'"
EXPECTED = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": API_CSP,
}
ALLOWED_ORIGIN = "https://tickets.example"


def assert_security_headers_once(headers: httpx.Headers) -> None:
    for name, value in EXPECTED.items():
        assert headers.get_list(name) == [value], (name, headers.get_list(name))


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/api/v1/events", None, 200),  # the app's JSON
        ("GET", "/api/v1/no-such-thing", None, 404),  # the app's problem
        ("POST", "/api/v1/events", b"x" * (2 * 1024 * 1024), 413),  # the edge's own problem page
    ],
)
def test_every_answer_carries_the_security_headers_once(
    stack: NativeStack, method: str, path: str, body: bytes | None, status: int
) -> None:
    answer = http(method, f"{stack.nginx.url}{path}", body=body, headers={"Content-Type": "application/json"})
    assert answer[0] == status
    assert_security_headers_once(httpx.Headers(answer[1]))


def test_the_app_sets_the_headers_itself_when_reached_without_the_edge(stack: NativeStack) -> None:
    """Straight at the app's port on purpose: the defence must not depend on Nginx being in front."""
    status, headers, _ = http("GET", f"{stack.app.url}/health/live")
    assert status == 200
    assert_security_headers_once(httpx.Headers(headers))


def preflight(stack: NativeStack, origin: str) -> tuple[int, httpx.Headers]:
    status, headers, _ = http(
        "OPTIONS",
        f"{stack.nginx.url}/api/v1/events",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    return status, httpx.Headers(headers)


def test_cors_preflight_from_an_allowed_origin_is_answered(stack: NativeStack) -> None:
    status, headers = preflight(stack, ALLOWED_ORIGIN)
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert "authorization" in headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Credentials" not in headers  # bearer tokens, never cookies


def test_cors_gives_a_foreign_origin_nothing(stack: NativeStack) -> None:
    status, headers = preflight(stack, "https://evil.example")
    assert status == 400
    assert "Access-Control-Allow-Origin" not in headers
    # A simple cross-origin GET is answered (CORS is not authentication) but the browser may not read it.
    _, simple, _ = http("GET", f"{stack.nginx.url}/api/v1/events", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in simple
    _, allowed, _ = http("GET", f"{stack.nginx.url}/api/v1/events", headers={"Origin": ALLOWED_ORIGIN})
    assert allowed["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN


def test_no_version_token_from_the_edge_or_the_app(stack: NativeStack) -> None:
    for path in ("/health/live", "/api/v1/no-such-thing"):
        _, headers, _ = http("GET", f"{stack.nginx.url}{path}")
        assert headers["Server"] == "nginx"  # server_tokens off: no "nginx/1.x.y"
        assert "X-Powered-By" not in headers
        assert "uvicorn" not in headers.get("Server", "")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/events", b'{"title": '),  # truncated JSON
        ("/api/v1/events/not-a-uuid/holds", b'{"seat_ids": ["x"]}'),  # bad path parameter
        ("/api/v1/auth/register", b'{"email": "a@b.c", "password": ' + b'"' + b"9" * 5000 + b'"}'),
    ],
)
def test_malformed_requests_get_a_problem_without_internals(stack: NativeStack, path: str, body: bytes) -> None:
    status, headers, answer = http(
        "POST", f"{stack.nginx.url}{path}", body=body, headers={"Content-Type": "application/json"}
    )
    assert 400 <= status < 500
    assert headers["Content-Type"].startswith("application/problem+json")
    text = answer.decode()
    for leak in ("Traceback", 'File "', ".py", "sqlalchemy", "asyncpg", "/work/"):
        assert leak not in text, leak
    assert json.loads(text)["status"] == status


def test_docs_load_only_self_hosted_assets_through_the_edge(stack: NativeStack) -> None:
    status, received, body = http("GET", f"{stack.nginx.url}/docs")
    headers = httpx.Headers(received)
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert "://" not in page, "the docs page names another host"
    references = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(references) == 3
    assert all(ref.startswith("/docs/assets/") for ref in references), references

    policy = headers["Content-Security-Policy"]
    assert headers.get_list("Content-Security-Policy") == [policy]  # the edge did not add a second, stricter one
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    inline = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in policy  # the one inline bootstrap may run, nothing else inline

    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    for ref in references:
        asset_status, asset_headers, asset = http("GET", f"{stack.nginx.url}{ref}")
        assert asset_status == 200, ref
        assert kinds[ref[ref.rindex(".") :]] in asset_headers["Content-Type"], ref
        assert asset == (SWAGGER_UI_DIR / ref.rsplit("/", 1)[1]).read_bytes(), ref  # the vendored file
    assert http("GET", f"{stack.nginx.url}/openapi.json")[0] == 200
    assert http("GET", f"{stack.nginx.url}/redoc")[0] == 404  # ReDoc would load from a CDN: not served
