"""Opaque refresh tokens: 256 random bits handed to the client once, only their SHA-256 kept on the server.

Why opaque and not a JWT: a refresh token is only ever checked by us, against a row we can spend or revoke, so it
needs no claims and no signature. Why a plain SHA-256 and not argon2: the token is 32 random bytes, so there is
nothing to guess and a slow hash buys nothing; the hash must be deterministic so that the presented token can be
found by an index lookup. A leaked table therefore holds nothing a client could present. See notes/security.md,
"Tokens".
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32
HASH_LENGTH = 64  # hex digits of a SHA-256


def new_refresh_token() -> str:
    """A fresh URL-safe token (43 characters) for one link of a refresh-token family."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def refresh_token_hash(token: str) -> str:
    """What the database stores and looks up: the SHA-256 of the token, as 64 lower-case hex digits."""
    return hashlib.sha256(token.encode()).hexdigest()
