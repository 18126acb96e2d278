"""OWASP API4:2023, unrestricted resource consumption: what one client can make the service spend is bounded.

The session stack runs an unthrottled edge (tests/conftest.py: every test logs in from 127.0.0.1), so the per-IP
limits are proved on a second, private Nginx rendered from the same template with strict ``EdgeLimits``, in front
of the same session app. It starts in about 0.1 s. The body cap, the slow-body timeout and the page-size cap are
attacked too. See notes/security.md, "Rate limits".
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from stack.native.layout import Layout, free_port
from stack.native.stack import NativeStack
from stack.native.web import EdgeLimits, NginxServer
from tests.api_users import call, create_event, new_user
from tests.probes import http

STRICT = EdgeLimits(auth_per_minute=6, auth_burst=2, holds_per_second=1, holds_burst=2, client_timeout_s=1)
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def strict_edge(stack: NativeStack) -> Iterator[NginxServer]:
    """A private Nginx with strict limits, proxying to the session app (through its fault proxy, like the main one)."""
    base = Path(tempfile.mkdtemp(prefix="refstack-strict-edge-"))
    base.chmod(0o711)  # nginx workers must traverse it
    layout = Layout(base, {"nginx": free_port(), "proxy_app": stack.layout.ports["proxy_app"]})
    edge = NginxServer(layout, STRICT)
    try:
        edge.start()
        yield edge
    finally:
        edge.close()
        shutil.rmtree(base, ignore_errors=True)


def login_form(email: str) -> bytes:
    return f"username={email}&password=wrong-password-123".encode()


def assert_edge_429(status: int, received: Mapping[str, str], body: bytes) -> None:
    headers = httpx.Headers(received)
    assert status == 429
    assert headers["Content-Type"].startswith(PROBLEM)
    assert headers["Retry-After"] == str(STRICT.retry_after_s) == "10"  # one slot per 10 s at 6 requests a minute
    assert headers["X-Content-Type-Options"] == "nosniff"  # the edge's own page carries the headers too
    problem = json.loads(body)
    assert problem["type"] == "https://refstack.dev/problems/too-many-requests"
    assert problem["status"] == 429
    assert problem["request_id"] == headers["X-Request-ID"]


def test_login_beyond_the_burst_is_429_with_retry_after_whatever_x_forwarded_for_says(
    strict_edge: NginxServer,
) -> None:
    url = f"{strict_edge.url}/api/v1/auth/token"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    answers = [http("POST", url, body=login_form("guess@example.com"), headers=form) for _ in range(6)]
    statuses = [status for status, _, _ in answers]
    assert statuses[:3] == [401, 401, 401], statuses  # one at the rate + a burst of 2, answered by the app
    assert statuses[3:] == [429, 429, 429], statuses
    assert_edge_429(*answers[3])

    # A client that invents a new address per request still lands in its own bucket: the key is the TCP peer.
    for n in range(3):
        spoofed = {**form, "X-Forwarded-For": f"203.0.113.{n + 1}", "X-Real-IP": f"198.51.100.{n + 1}"}
        status, headers, body = http("POST", url, body=login_form("guess@example.com"), headers=spoofed)
        assert_edge_429(status, headers, body)

    # Only the limited locations are limited.
    assert http("GET", f"{strict_edge.url}/health/live")[0] == 200


def test_hold_placement_beyond_the_burst_is_429_and_never_reaches_the_app(
    stack: NativeStack, strict_edge: NginxServer
) -> None:
    organizer = new_user(stack, organizer=True, label="organizer")
    buyer = new_user(stack, label="bot")
    event = create_event(stack, organizer, rows=1, seats_per_row=8)
    seats = [seat["id"] for seat in call(stack, "GET", f"/api/v1/events/{event['id']}/seats")[2]["items"]]
    url = f"{strict_edge.url}/api/v1/events/{event['id']}/holds"
    sent = {**buyer.headers, "Content-Type": "application/json"}
    answers = [http("POST", url, body=json.dumps({"seat_ids": [seat]}).encode(), headers=sent) for seat in seats]
    statuses = [status for status, _, _ in answers]
    assert statuses[:3] == [201, 201, 201], statuses
    assert 429 in statuses[3:], statuses
    for answer in answers:
        if answer[0] == 429:
            assert_edge_429(*answer)
    held = stack.primary.sql(f"SELECT count(*) FROM hold WHERE user_id = '{buyer.id}'", "refstack")
    assert int(held) == statuses.count(201)  # a refused request wrote nothing: the edge answered alone


def test_a_chunked_body_over_the_cap_is_413_from_the_edge(stack: NativeStack) -> None:
    """No Content-Length to refuse up front: Nginx counts the chunks and stops at 1 MiB."""

    def chunks() -> Iterator[bytes]:
        for _ in range(32):
            yield b"x" * 65536  # 2 MiB in all

    answer = httpx.post(f"{stack.nginx.url}/api/v1/events", content=chunks(), timeout=10)
    assert answer.request.headers.get("Transfer-Encoding") == "chunked"
    assert answer.status_code == 413
    assert answer.headers["Content-Type"].startswith(PROBLEM)
    assert answer.json()["status"] == 413


def test_a_slow_body_is_cut_by_the_client_body_timeout(strict_edge: NginxServer) -> None:
    """Slow loris: announce a body, send a few bytes, then nothing. The edge must end it, not wait forever."""
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", strict_edge.port), timeout=5) as sock:
        head = (
            "POST /api/v1/events HTTP/1.1\r\nHost: refstack\r\nContent-Type: application/json\r\n"
            'Content-Length: 1000\r\n\r\n{"title":'
        )
        sock.sendall(head.encode())
        answer = b""
        while chunk := sock.recv(4096):  # until the server closes; the 5 s socket timeout fails the test otherwise
            answer += chunk
    elapsed = time.monotonic() - began
    assert STRICT.client_timeout_s * 0.9 <= elapsed < 4, elapsed
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_a_page_size_over_the_cap_is_422_not_a_silent_clamp(stack: NativeStack) -> None:
    status, headers, problem = call(stack, "GET", "/api/v1/events?limit=100000")
    assert status == 422
    assert headers["content-type"].startswith(PROBLEM)
    assert problem["errors"][0]["loc"] == ["query", "limit"]
    assert call(stack, "GET", "/api/v1/events?limit=100")[0] == 200
