"""What a route needs, said as a type: ``StateDep``, ``SettingsDep``, ``CurrentUser``, ``Organizer``, ``UowsDep``
(the primary's unit-of-work factory, for writes), ``ReadsDep`` (read-only use cases, routed by the ReplicaRouter),
``ReplicaRouterDep`` and ``PaymentsDep``.

Why ``Annotated`` aliases: a route names what it needs and one override in a test reaches every route. They read
the lifespan state from the request scope, so nothing here holds a client. See notes/fastapi.md,
"App factory and lifespan".
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar, cast

from fastapi import Depends, Header, Request

from app.api.problems import Problem
from app.db.replica_router import ReplicaRouter
from app.db.replica_routing import Reason
from app.payments.client import PaymentsClient
from app.security.tokens import InvalidTokenError, Principal, verify_access_token
from app.services.unit_of_work import UnitOfWorkFactories, UnitOfWorkFactory
from app.settings import Settings
from app.state import AppState

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}
T = TypeVar("T")


async def app_state(request: Request) -> AppState:
    """The server's per-request copy of what the lifespan yielded."""
    return cast(AppState, request.scope["state"])


StateDep = Annotated[AppState, Depends(app_state)]


async def settings(state: StateDep) -> Settings:
    return state["settings"]


SettingsDep = Annotated[Settings, Depends(settings)]


async def current_principal(state: StateDep, authorization: Annotated[str | None, Header()] = None) -> Principal:
    """The caller proved by ``Authorization: Bearer <token>``; 401 with ``WWW-Authenticate: Bearer`` otherwise."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, kind="unauthenticated", detail="Send a bearer access token.", headers=BEARER_CHALLENGE)
    try:
        return verify_access_token(token.strip(), state["settings"])
    except InvalidTokenError:
        raise Problem(
            401,
            kind="invalid-token",
            detail="The access token is invalid or expired.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from None


CurrentUser = Annotated[Principal, Depends(current_principal)]


async def optional_principal(
    state: StateDep, authorization: Annotated[str | None, Header()] = None
) -> Principal | None:
    """The caller on a public read when a valid bearer token came with it (to honour its own writes); else None."""
    if authorization is None:
        return None
    try:
        return await current_principal(state, authorization)
    except Problem:
        return None


MaybeUser = Annotated[Principal | None, Depends(optional_principal)]


async def require_organizer(principal: CurrentUser) -> Principal:
    """Route guard for organizer-only writes: attach with ``dependencies=[Depends(require_organizer)]``."""
    if principal.role != "organizer":
        raise Problem(403, kind="forbidden", detail="Only organizers can do this.")
    return principal


Organizer = Annotated[Principal, Depends(require_organizer)]


async def unit_of_work_factory(state: StateDep) -> UnitOfWorkFactory:
    """The primary's unit-of-work factory, built once by the lifespan with the server-side transaction timeouts;
    each transaction of a use case is ``async with uows() as uow``, and the use case decides when to commit."""
    return state["uows"].primary


UowsDep = Annotated[UnitOfWorkFactory, Depends(unit_of_work_factory)]


class Reads:
    """Read-only use cases for one caller, each given the unit-of-work factory of the engine the router picks.

    Why a runner instead of a factory handed out up front: the router may abandon a replica that stalls and re-run
    the use case on the primary, which it can only do if it decides where the use case runs.
    """

    def __init__(self, router: ReplicaRouter, user_id: uuid.UUID | None, uows: UnitOfWorkFactories) -> None:
        self._router = router
        self._user_id = user_id
        self._uows = uows

    async def run(self, use_case: Callable[[UnitOfWorkFactory], Awaitable[T]]) -> T:
        return await self._router.read(self._user_id, lambda engine: use_case(self._uows.on(engine)))

    async def run_on_primary(self, reason: Reason, use_case: Callable[[UnitOfWorkFactory], Awaitable[T]]) -> T:
        return await self._router.on_primary(reason, lambda engine: use_case(self._uows.on(engine)))


async def reads(state: StateDep, user: MaybeUser) -> Reads:
    return Reads(state["router"], user.user_id if user else None, state["uows"])


ReadsDep = Annotated[Reads, Depends(reads)]


async def replica_router(state: StateDep) -> ReplicaRouter:
    """For routes that write: ``await router.remember_write(user_id)`` after the commit (read-your-writes)."""
    return state["router"]


ReplicaRouterDep = Annotated[ReplicaRouter, Depends(replica_router)]


async def payments_client(state: StateDep) -> PaymentsClient:
    """The process's payment-provider client (one HTTP pool and one circuit breaker per worker)."""
    return state["payments"]


PaymentsDep = Annotated[PaymentsClient, Depends(payments_client)]
