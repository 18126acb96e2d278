"""Refresh-token sessions for tests through Nginx: log in a fresh account, rotate, expect a refusal.

Shared by tests/integration/test_refresh_tokens.py and tests/security/test_api2_authentication.py, so no test
imports another test module. See notes/security.md, "Tokens".
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from app.settings import Settings
from stack.native.stack import NativeStack
from tests.api_users import call, password_login

INVALID = "https://refstack.dev/problems/invalid-refresh-token"


@dataclass(frozen=True)
class Session:
    user_id: str
    access_token: str
    refresh_token: str


def login(stack: NativeStack) -> Session:
    """Register a fresh account and log in with the password flow."""
    email, password = f"refresh-{secrets.token_hex(6)}@example.com", f"pw-{secrets.token_urlsafe(12)}"
    status, _, created = call(stack, "POST", "/api/v1/auth/register", body={"email": email, "password": password})
    assert status == 201, created
    status, _, answer = password_login(stack, email, password)
    assert status == 200, answer
    issued = json.loads(answer)
    assert set(issued) == {"access_token", "refresh_token", "token_type", "expires_in"}
    return Session(created["id"], issued["access_token"], issued["refresh_token"])


def refresh(stack: NativeStack, token: str) -> tuple[int, dict[str, str], Any]:
    return call(stack, "POST", "/api/v1/auth/refresh", body={"refresh_token": token})


def rotated(stack: NativeStack, token: str) -> Session:
    status, _, issued = refresh(stack, token)
    assert status == 200, issued
    assert issued["token_type"] == "bearer"
    assert issued["expires_in"] == Settings.model_fields["access_token_ttl_s"].default  # the stack keeps it
    assert issued["refresh_token"] != token
    return Session("", issued["access_token"], issued["refresh_token"])


def assert_refused(stack: NativeStack, token: str) -> None:
    status, headers, problem = refresh(stack, token)
    assert status == 401, problem
    assert headers["www-authenticate"] == "Bearer"
    assert headers["content-type"].startswith("application/problem+json")
    assert problem["type"] == INVALID
