"""``@idempotent``: a route decorated with it runs once per (user, ``Idempotency-Key``), and a repeat of the request
gets the first answer byte for byte.

Why a decorator around the whole handler: the route itself reads straight — call the use case, map its errors,
respond — and the key is handled outside it, where what is replayed is the HTTP response itself (status, headers,
body bytes), so a client that lost the first answer gets exactly it, with ``Idempotent-Replayed: true``. A second
request with the same key that arrives while the first is still running waits for it (bounded) instead of
executing twice. The decorator adds one dependency to the route's signature (the key header, with the pattern the
server enforces stated in the OpenAPI schema, the caller and the unit-of-work factory); FastAPI resolves it like
any other. The store is app/services/idempotency.py. See notes/rest_design.md, "Idempotency keys".
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, get_type_hints

from fastapi import Depends, Header, Request, Response

from app.api.deps import CurrentUser, SettingsDep, UowsDep
from app.api.problems import Problem
from app.services import idempotency
from app.services.idempotency import StoredResponse
from app.services.unit_of_work import UnitOfWorkFactory
from app.settings import Settings

KEY_PATTERN = r"^[A-Za-z0-9._:-]{1,255}$"
REPLAYED_HEADERS = ("content-type", "location")
POLL_S = 0.05
Endpoint = Callable[..., Awaitable[Response]]


def replay(stored: StoredResponse) -> Response:
    return Response(
        content=stored.body, status_code=stored.status, headers={**stored.headers, "Idempotent-Replayed": "true"}
    )


class IdempotentRequest:
    """One request under its key (or under none: then it simply runs)."""

    def __init__(
        self, request: Request, uows: UnitOfWorkFactory, user_id: uuid.UUID, key: str | None, *, wait_s: float
    ) -> None:
        self._request = request
        self._uows = uows
        self._user_id = user_id
        self._key = key
        self._wait_s = wait_s

    async def run(self, handler: Callable[[], Awaitable[Response]]) -> Response:
        """Execute under the key, or replay what the first request with it answered."""
        if self._key is None:
            return await handler()
        request = self._request
        request_fingerprint = idempotency.fingerprint(request.method, request.url.path, await request.body())
        deadline = time.monotonic() + self._wait_s
        while True:
            claim = await idempotency.claim(self._uows, self._user_id, self._key, request_fingerprint)
            if claim.outcome == "owned":
                return await self._execute_and_store(handler)
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
            await asyncio.sleep(POLL_S)  # sleep-ok: the first request's answer is awaited under the deadline above

    async def _execute_and_store(self, handler: Callable[[], Awaitable[Response]]) -> Response:
        """Client errors (4xx) are the answer and are kept; server errors leave the key free for the retry."""
        key = str(self._key)
        try:
            response = await handler()
        except Problem as problem:
            if problem.status_code >= 500:
                await idempotency.abandon(self._uows, self._user_id, key)
                raise
            response = problem.response(self._request.scope)
        except BaseException:
            await idempotency.abandon(self._uows, self._user_id, key)
            raise
        headers = {name: value for name, value in response.headers.items() if name in REPLAYED_HEADERS}
        stored = StoredResponse(response.status_code, headers, bytes(response.body))
        await idempotency.complete(self._uows, self._user_id, key, stored)
        return response


def idempotent(wait_s: Callable[[Settings], float]) -> Callable[[Endpoint], Endpoint]:
    """Decorate a route (under its ``@router.post``) so it runs once per key; ``wait_s``: how long a duplicate
    waits for the first request's answer, from the settings (at least the longest the handler can take)."""

    async def gate(
        request: Request,
        user: CurrentUser,
        uows: UowsDep,
        settings: SettingsDep,
        idempotency_key: Annotated[
            str | None,
            Header(
                pattern=KEY_PATTERN,
                max_length=255,
                description="Run this request at most once; a repeat with the same key and body replays the answer.",
            ),
        ] = None,
    ) -> IdempotentRequest:
        return IdempotentRequest(request, uows, user.user_id, idempotency_key, wait_s=wait_s(settings))

    def decorate(endpoint: Endpoint) -> Endpoint:
        hints = get_type_hints(endpoint, include_extras=True)
        signature = inspect.signature(endpoint)
        parameters = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()]
        gated = inspect.Parameter(
            "idempotent_request", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[IdempotentRequest, Depends(gate)]
        )

        @functools.wraps(endpoint)
        async def handler(*args: Any, idempotent_request: IdempotentRequest, **kwargs: Any) -> Response:
            return await idempotent_request.run(functools.partial(endpoint, *args, **kwargs))

        handler.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*parameters, gated], return_annotation=hints.get("return", Response)
        )
        return handler

    return decorate
