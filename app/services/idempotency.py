"""The ``Idempotency-Key`` store: the first response to (user, key) is kept in PostgreSQL and replayed verbatim.

Why PostgreSQL and not Redis: the key must be claimed atomically (``INSERT ... ON CONFLICT DO NOTHING``: of two
concurrent requests with one key exactly one inserts and executes) and must survive exactly as long as the
booking it protects, in the same durable store. Why a fingerprint: the same key with a *different* request is a
client bug that must be refused (422), not answered with an unrelated stored response. Server errors (5xx) are
not kept: nothing happened, so the client's retry with the same key must be allowed to run.
See notes/rest_design.md, "Idempotency keys".
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert

from app.db.models import IdempotencyKey
from app.services.unit_of_work import UnitOfWorkFactory


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests "the same": method, path and the exact body bytes."""
    return hashlib.sha256(b"\n".join([method.encode(), path.encode(), body])).hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Claim:
    """``owned``: this request must execute and then ``complete``; otherwise what the first request left."""

    outcome: Literal["owned", "mismatch", "in_progress", "completed"]
    stored: StoredResponse | None = None


async def claim(uows: UnitOfWorkFactory, user_id: uuid.UUID, key: str, request_fingerprint: str) -> Claim:
    async with uows() as uow:
        inserted = await uow.session.scalar(
            insert(IdempotencyKey)
            .values(user_id=user_id, key=key, fingerprint=request_fingerprint)
            .on_conflict_do_nothing()
            .returning(IdempotencyKey.key)
        )
        await uow.commit()
        if inserted is not None:
            return Claim("owned")
        row = await uow.session.scalar(
            select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        )
        if row is None:  # the owner gave up (5xx) between our insert and select: claim again
            return Claim("in_progress")
        if row.fingerprint != request_fingerprint:
            return Claim("mismatch")
        if row.status != "completed" or row.response_status is None or row.response_body is None:
            return Claim("in_progress")
        return Claim(
            "completed", StoredResponse(row.response_status, dict(row.response_headers or {}), row.response_body)
        )


async def complete(uows: UnitOfWorkFactory, user_id: uuid.UUID, key: str, response: StoredResponse) -> None:
    async with uows() as uow:
        await uow.session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
            .values(
                status="completed",
                response_status=response.status,
                response_headers=response.headers,
                response_body=response.body,
            )
        )
        await uow.commit()


async def abandon(uows: UnitOfWorkFactory, user_id: uuid.UUID, key: str) -> None:
    """Forget a claim whose request failed on our side, so a retry with the same key executes again."""
    async with uows() as uow:
        await uow.session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        )
        await uow.commit()
