"""Short-lived JWT access tokens: signed with one pinned algorithm, checked for ``exp``, ``iat``, ``iss``, ``aud``.

Why pin the algorithm on decode: a verifier that trusts the token's own ``alg`` header accepts ``alg: none`` or an
HS256 token "signed" with a public key. PyJWT verifies only with the algorithms we pass. A small leeway absorbs
clock skew between instances. See notes/security.md, "Tokens".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt

from app.settings import Settings

ALGORITHM = "HS256"
LEEWAY = timedelta(seconds=10)
Role = Literal["user", "organizer"]


@dataclass(frozen=True)
class Principal:
    """Who is calling, as proved by a valid token."""

    user_id: uuid.UUID
    role: Role


class InvalidTokenError(Exception):
    """The token is missing, malformed, expired, or not ours; the message is safe to log, not to return."""


def issue_access_token(principal: Principal, settings: Settings, *, now: datetime | None = None) -> str:
    issued = now or datetime.now(UTC)
    claims = {
        "sub": str(principal.user_id),
        "role": principal.role,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": issued,
        "exp": issued + timedelta(seconds=settings.access_token_ttl_s),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def verify_access_token(token: str, settings: Settings) -> Principal:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=LEEWAY,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
        role = claims.get("role")
        if role not in ("user", "organizer"):
            raise InvalidTokenError("unknown role")
        return Principal(user_id=uuid.UUID(claims["sub"]), role=role)
    except (jwt.PyJWTError, ValueError) as exc:
        raise InvalidTokenError(type(exc).__name__) from exc
