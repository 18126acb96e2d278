"""Signed webhooks in the Standard Webhooks form: what a receiver checks to know a POST came from us, unchanged,
recently.

Why these pieces: ``webhook-signature: v1,<base64 HMAC-SHA256(secret, id + "." + timestamp + "." + body)>`` binds the
exact body bytes, the message id (stable across retries, so a receiver deduplicates on ``webhook-id``) and the
attempt's time (``webhook-timestamp``, Unix seconds), so a captured request replayed later fails the receiver's
window check (``REPLAY_WINDOW_S``) and a body or id changed in flight fails the MAC. The secret is shown to the
organizer once, as ``whsec_`` + base64, when the URL is set.

Why derived and not stored: the worker must hold the raw secret to sign (an HMAC key cannot be kept as a hash), so
the database keeps only a random salt per webhook and the secret is ``HMAC(server key, salt)``. A copy of the
database alone signs nothing; a leaked server key with the database does, so the key lives in the environment (a
secret manager in production) like the JWT key, and rotating it re-keys every webhook at once. Pure functions, no
IO. See notes/rabbitmq.md, "What users receive".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SALT_BYTES = 24
REPLAY_WINDOW_S = 300  # what we tell receivers: refuse a timestamp more than 5 minutes from their clock
SECRET_PREFIX = "whsec_"  # noqa: S105 - the public prefix of every secret, not a secret


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def derive_secret(server_key: str, salt: bytes) -> bytes:
    """The webhook's signing secret: HMAC-SHA256 of its salt under the server's key."""
    return hmac.new(server_key.encode(), salt, hashlib.sha256).digest()


def shown_secret(secret: bytes) -> str:
    """How the organizer receives the secret (once): ``whsec_`` + base64, as Standard Webhooks libraries read it."""
    return SECRET_PREFIX + base64.b64encode(secret).decode("ascii")


def signature_headers(secret: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of a signed delivery of ``body``, for the attempt made at ``timestamp`` (Unix seconds)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    mac = base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode("ascii")
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": f"v1,{mac}"}
