"""Refresh tokens, the pure part: unguessable values, and a stored form that is a deterministic one-way hash.

No services. The lifecycle (rotation, reuse, logout, races) is proved in tests/integration/test_refresh_tokens.py.
See notes/security.md, "Tokens".
"""

from __future__ import annotations

import base64
import hashlib
import re

from sqlalchemy import CHAR

from app.db.models import RefreshToken
from app.security.refresh_tokens import HASH_LENGTH, TOKEN_BYTES, new_refresh_token, refresh_token_hash
from app.settings import Settings


def test_a_token_carries_256_random_bits_in_url_safe_text() -> None:
    tokens = {new_refresh_token() for _ in range(1000)}
    assert len(tokens) == 1000
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
        assert len(base64.urlsafe_b64decode(token + "=")) == TOKEN_BYTES == 32


def test_the_stored_hash_is_sha256_hex_and_deterministic() -> None:
    token = new_refresh_token()
    stored = refresh_token_hash(token)
    assert stored == refresh_token_hash(token) == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", stored)
    assert token not in stored
    assert refresh_token_hash(new_refresh_token()) != stored


def test_the_column_fits_the_hash_exactly() -> None:
    column = RefreshToken.__table__.c.token_hash
    assert isinstance(column.type, CHAR)
    assert column.type.length == HASH_LENGTH == 64
    assert column.unique


def test_refresh_tokens_live_fourteen_days_by_default() -> None:
    assert Settings.model_fields["refresh_token_ttl_s"].default == 14 * 24 * 3600
