"""API2:2023 Broken authentication: forged, expired and misdirected access tokens, and a replayed refresh token.

Each forged token carries a real user id and the organizer role, so it would open ``POST /events`` if the
verifier were lax; a token built by the same helper with correct claims is accepted (the control that makes each
refusal mean something). Through Nginx. The refresh-token lifecycle has its own tests in
tests/integration/test_refresh_tokens.py; here only the attack: a stolen refresh token replayed after the owner
used it. See notes/security.md, "Tokens".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.settings import DEMO_JWT_SECRET
from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, event_body, new_user
from tests.refresh_sessions import assert_refused, login, rotated

SECRET = DEMO_JWT_SECRET  # the session stack runs in demo mode with the demo signing key


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(subject: str, *, alg: str = "HS256", key: bytes = SECRET.encode(), **overrides: Any) -> str:
    """A JWT signed by hand, so nothing a JWT library refuses to produce is out of reach."""
    now = datetime.now(UTC)
    claims = {
        "sub": subject,
        "role": "organizer",
        "iss": "refstack",
        "aud": "refstack-api",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        **overrides,
    }
    signing_input = f"{b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
    signature = "" if alg == "none" else b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())
    return f"{signing_input}.{signature}"


def create_with(stack: NativeStack, token: str) -> tuple[int, dict[str, str]]:
    status, headers, _ = call(
        stack, "POST", "/api/v1/events", body=event_body(), headers={"Authorization": f"Bearer {token}"}
    )
    return status, headers


@pytest.fixture(scope="module")
def victim(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="api2-victim")


def test_a_correctly_signed_token_is_accepted(stack: NativeStack, victim: ApiUser) -> None:
    assert create_with(stack, forged(victim.id))[0] == 201


@pytest.mark.parametrize(
    ("attack", "alg", "key", "claims"),
    [
        ("alg-none", "none", b"", {}),
        ("rs256-header-hmac-signature", "RS256", SECRET.encode(), {}),
        ("wrong-key", "HS256", b"guessed-" * 6, {}),
        ("expired", "HS256", SECRET.encode(), {"exp": int(datetime.now(UTC).timestamp()) - 60}),
        ("wrong-audience", "HS256", SECRET.encode(), {"aud": "another-service"}),
        ("wrong-issuer", "HS256", SECRET.encode(), {"iss": "evil"}),
        ("unknown-role", "HS256", SECRET.encode(), {"role": "admin"}),
    ],
)
def test_a_forged_or_stale_token_is_401_with_the_invalid_token_challenge(
    stack: NativeStack, victim: ApiUser, attack: str, alg: str, key: bytes, claims: dict[str, Any]
) -> None:
    status, headers = create_with(stack, forged(victim.id, alg=alg, key=key, **claims))
    assert status == 401, attack
    assert headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_a_stolen_refresh_token_replayed_after_the_owner_refreshed_kills_both_sessions(stack: NativeStack) -> None:
    owner = login(stack)
    stolen = owner.refresh_token
    owners_next = rotated(stack, owner.refresh_token)
    assert_refused(stack, stolen)
    assert_refused(stack, owners_next.refresh_token)
