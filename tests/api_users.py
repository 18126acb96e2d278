"""Test accounts through the real API (register, promote to organizer with SQL if asked, log in), and the JSON
call and event set-up the API tests share.

Why through the API: the bearer token a test sends is exactly what a client would hold. Organizers cannot
register themselves, so the promotion is a direct SQL update on the primary, done before the first token is
issued (the role travels inside the token). Emails carry a random suffix so tests never collide.
See notes/security.md.
"""

from __future__ import annotations

import json
import secrets
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stack.native.stack import NativeStack
from tests.probes import http


@dataclass(frozen=True)
class ApiUser:
    id: str
    email: str
    headers: dict[str, str]


def new_user(stack: NativeStack, *, organizer: bool = False, label: str = "user") -> ApiUser:
    """A fresh account and its ``Authorization: Bearer`` header."""
    email = f"{label}-{secrets.token_hex(6)}@example.com"
    password = f"pw-{secrets.token_urlsafe(12)}"
    base = f"{stack.nginx.url}/api/v1/auth"
    body = json.dumps({"email": email, "password": password}).encode()
    status, _, answer = http("POST", f"{base}/register", body=body, headers={"Content-Type": "application/json"})
    if status != 201:
        raise AssertionError(f"register {email}: {status} {answer!r}")
    user_id = json.loads(answer)["id"]
    if organizer:
        stack.primary.sql(f"UPDATE app_user SET role = 'organizer' WHERE id = '{user_id}'", database="refstack")
    status, _, answer = password_login(stack, email, password)
    if status != 200:
        raise AssertionError(f"token for {email}: {status} {answer!r}")
    return ApiUser(id=user_id, email=email, headers={"Authorization": f"Bearer {json.loads(answer)['access_token']}"})


def password_login(stack: NativeStack, email: str, password: str) -> tuple[int, Mapping[str, str], bytes]:
    """``POST /api/v1/auth/token`` with the OAuth2 password form, through Nginx; errors come back as values."""
    form = urllib.parse.urlencode({"username": email, "password": password}).encode()
    return http(
        "POST",
        f"{stack.nginx.url}/api/v1/auth/token",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def call(
    stack: NativeStack,
    method: str,
    path: str,
    *,
    user: ApiUser | None = None,
    body: object | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """A JSON call through Nginx: status, headers with lower-case names, and the parsed body (None if empty)."""
    sent = {**(user.headers if user else {}), **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    status, received, answer = http(method, f"{stack.nginx.url}{path}", body=data, headers=sent)
    return status, {k.lower(): v for k, v in received.items()}, json.loads(answer) if answer else None


def event_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "title": f"Show {secrets.token_hex(4)}",
        "city": f"City-{secrets.token_hex(4)}",
        "venue": "Hall A",
        "starts_at": "2027-06-01T20:00:00+00:00",
        "price_cents": 4500,
        "rows": 2,
        "seats_per_row": 3,
    }
    return {**body, **overrides}


def create_event(stack: NativeStack, organizer: ApiUser, **overrides: object) -> dict[str, Any]:
    status, _, event = call(stack, "POST", "/api/v1/events", user=organizer, body=event_body(**overrides))
    if status != 201:
        raise AssertionError(f"create event: {status} {event!r}")
    return dict(event)
