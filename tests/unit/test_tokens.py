"""Access tokens: accepted only when signed with the pinned algorithm and every claim checks out.

Pure (no services). See notes/security.md, "Tokens".
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from app.security.tokens import ALGORITHM, InvalidTokenError, Principal, issue_access_token, verify_access_token
from app.settings import Settings

SETTINGS = Settings(jwt_secret="k" * 64, access_token_ttl_s=60)
ALICE = Principal(user_id=uuid.uuid4(), role="user")


def claims(**overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    base: dict[str, object] = {
        "sub": str(ALICE.user_id),
        "role": "user",
        "iss": SETTINGS.jwt_issuer,
        "aud": SETTINGS.jwt_audience,
        "iat": now,
        "exp": now + timedelta(minutes=1),
    }
    return {**base, **overrides}


def test_round_trip() -> None:
    assert verify_access_token(issue_access_token(ALICE, SETTINGS), SETTINGS) == ALICE


def test_expired_token_is_refused_after_the_leeway() -> None:
    old = datetime.now(UTC) - timedelta(seconds=SETTINGS.access_token_ttl_s + 11)
    with pytest.raises(InvalidTokenError, match="Expired"):
        verify_access_token(issue_access_token(ALICE, SETTINGS, now=old), SETTINGS)


def test_small_clock_skew_is_tolerated() -> None:
    skewed = datetime.now(UTC) - timedelta(seconds=SETTINGS.access_token_ttl_s + 5)
    assert verify_access_token(issue_access_token(ALICE, SETTINGS, now=skewed), SETTINGS) == ALICE


@pytest.mark.parametrize("field", ["iss", "aud"])
def test_foreign_issuer_or_audience_is_refused(field: str) -> None:
    token = jwt.encode(claims(**{field: "someone-else"}), SETTINGS.jwt_secret, algorithm=ALGORITHM)
    with pytest.raises(InvalidTokenError):
        verify_access_token(token, SETTINGS)


def test_missing_exp_is_refused() -> None:
    token = jwt.encode({k: v for k, v in claims().items() if k != "exp"}, SETTINGS.jwt_secret, algorithm=ALGORITHM)
    with pytest.raises(InvalidTokenError):
        verify_access_token(token, SETTINGS)


def test_alg_none_is_refused() -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims(iat=0, exp=2**40)).encode()).rstrip(b"=")
    with pytest.raises(InvalidTokenError):
        verify_access_token(f"{header.decode()}.{body.decode()}.", SETTINGS)


def test_other_algorithm_with_the_same_secret_is_refused() -> None:
    token = jwt.encode(claims(), SETTINGS.jwt_secret, algorithm="HS512")
    with pytest.raises(InvalidTokenError):
        verify_access_token(token, SETTINGS)


def test_wrong_signature_and_unknown_role_are_refused() -> None:
    forged = jwt.encode(claims(), "x" * 64, algorithm=ALGORITHM)
    promoted = jwt.encode(claims(role="admin"), SETTINGS.jwt_secret, algorithm=ALGORITHM)
    for token in (forged, promoted, "not-a-token"):
        with pytest.raises(InvalidTokenError):
            verify_access_token(token, SETTINGS)


def test_production_refuses_the_demo_signing_key() -> None:
    with pytest.raises(ValueError, match="REFSTACK_JWT_SECRET must be set in production"):
        Settings(env="production")
