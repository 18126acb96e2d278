"""HTTP glue for ``Idempotency-Key``: run a money-moving request once per (user, key), replay it byte for byte.

Why here and not in the service: what is replayed is the HTTP response itself (status, headers, body bytes), so a
client that lost the first answer gets exactly it, with ``Idempotent-Replayed: true``. A second request with the
same key that arrives while the first is still running waits for it (bounded) instead of executing twice. The
store is app/services/idempotency.py. See notes/rest_design.md, "Idempotency keys".
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from app.api.problems import Problem
from app.services import idempotency
from app.services.idempotency import StoredResponse
from app.services.unit_of_work import UnitOfWork

KEY_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,255}$")
REPLAYED_HEADERS = ("content-type", "location")
POLL_S = 0.05


def check_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        raise Problem(
            422,
            detail="Idempotency-Key must be 1 to 255 characters of letters, digits and . _ : -",
            extensions={"errors": [{"loc": ["header", "Idempotency-Key"], "msg": "invalid key", "type": "key"}]},
        )
    return key


def replay(stored: StoredResponse) -> Response:
    return Response(
        content=stored.body, status_code=stored.status, headers={**stored.headers, "Idempotent-Replayed": "true"}
    )


async def run_once(
    request: Request,
    uow: UnitOfWork,
    user_id: uuid.UUID,
    key: str,
    execute: Callable[[], Awaitable[Response]],
    *,
    wait_s: float,
) -> Response:
    """Execute under the key, or replay what the first request with it answered."""
    print_ = idempotency.fingerprint(request.method, request.url.path, await request.body())
    deadline = time.monotonic() + wait_s
    while True:
        claim = await idempotency.claim(uow, user_id, key, print_)
        if claim.outcome == "owned":
            return await _execute_and_store(request, uow, user_id, key, execute)
        if claim.outcome == "mismatch":
            raise Problem(
                422,
                kind="idempotency-key-reused",
                detail="This Idempotency-Key was used with a different request; use a new key for a new request.",
            )
        if claim.stored is not None:
            return replay(claim.stored)
        if time.monotonic() > deadline:
            raise Problem(
                409,
                kind="request-in-progress",
                detail="A request with this Idempotency-Key is still being processed; retry shortly.",
                headers={"Retry-After": "1"},
            )
        await asyncio.sleep(POLL_S)


async def _execute_and_store(
    request: Request, uow: UnitOfWork, user_id: uuid.UUID, key: str, execute: Callable[[], Awaitable[Response]]
) -> Response:
    """Client errors (4xx) are the answer and are kept; server errors leave the key free for the retry."""
    try:
        response = await execute()
    except Problem as problem:
        if problem.status_code >= 500:
            await idempotency.abandon(uow, user_id, key)
            raise
        response = problem.response(request.scope)
    except BaseException:
        await idempotency.abandon(uow, user_id, key)
        raise
    headers = {name: value for name, value in response.headers.items() if name in REPLAYED_HEADERS}
    await idempotency.complete(uow, user_id, key, StoredResponse(response.status_code, headers, bytes(response.body)))
    return response
