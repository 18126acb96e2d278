"""``POST /api/v1/auth/register``, ``/auth/token`` (OAuth2 password flow), ``/auth/refresh`` and ``/auth/logout``.

Why login answers the same for an unknown email and a wrong password: a different message or a faster answer
tells an attacker which emails have accounts. Why 401 carries ``WWW-Authenticate: Bearer``: RFC 6750 says how
to authenticate, and clients (and the OpenAPI "Authorize" button) rely on it. Why every refused refresh token gets
the same 401 (``invalid-refresh-token``): whether it was unknown, expired, spent or revoked is for our logs, not for
whoever holds it. See notes/security.md.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from app.api.deps import BEARER_CHALLENGE, CurrentUser, SettingsDep, StateDep, UowsDep
from app.api.problems import Problem
from app.api.v1.schemas import PasswordGrantForm, RefreshTokenIn, Registration, TokenOut, UserOut
from app.security.passwords import password_problems
from app.security.tokens import Principal, issue_access_token
from app.services.refresh_tokens import InvalidRefreshTokenError, revoke_family, rotate, start_family
from app.services.users import EmailTakenError, authenticate, load_user, register_user
from app.settings import Settings


def token_pair(principal: Principal, refresh_token: str, settings: Settings) -> TokenOut:
    return TokenOut(
        access_token=issue_access_token(principal, settings),
        refresh_token=refresh_token,
        expires_in=settings.access_token_ttl_s,
    )


def build_auth_router() -> APIRouter:
    router = APIRouter(tags=["auth"])

    @router.post("/auth/register", status_code=201, response_model=UserOut)
    async def register(body: Registration, uows: UowsDep, state: StateDep, response: Response) -> UserOut:
        reasons = password_problems(body.password, body.email)
        if reasons:
            raise Problem(
                422,
                kind="weak-password",
                detail="The password " + "; ".join(reasons) + ".",
                extensions={
                    "errors": [{"loc": ["body", "password"], "msg": r, "type": "weak_password"} for r in reasons]
                },
            )
        try:
            user = await register_user(uows, state["passwords"], body.email, body.password)
        except EmailTakenError:
            raise Problem(409, kind="email-taken", detail="An account with this email already exists.") from None
        response.headers["Location"] = "/api/v1/me"
        return UserOut(id=user.id, email=user.email, role=user.role)

    @router.post("/auth/token", response_model=TokenOut)
    async def token(
        form: Annotated[PasswordGrantForm, Depends()], uows: UowsDep, state: StateDep, settings: SettingsDep
    ) -> TokenOut:
        principal = await authenticate(uows, state["passwords"], form.username, form.password)
        if principal is None:
            raise Problem(401, kind="invalid-credentials", detail="Wrong email or password.", headers=BEARER_CHALLENGE)
        refresh_token = await start_family(uows, principal.user_id, ttl_s=settings.refresh_token_ttl_s)
        return token_pair(principal, refresh_token, settings)

    @router.post("/auth/refresh", response_model=TokenOut)
    async def refresh(body: RefreshTokenIn, uows: UowsDep, settings: SettingsDep) -> TokenOut:
        try:
            rotation = await rotate(uows, body.refresh_token, ttl_s=settings.refresh_token_ttl_s)
        except InvalidRefreshTokenError:
            raise Problem(
                401,
                kind="invalid-refresh-token",
                detail="The refresh token is invalid, expired or already used; log in again.",
                headers=BEARER_CHALLENGE,
            ) from None
        return token_pair(rotation.principal, rotation.refresh_token, settings)

    @router.post("/auth/logout", status_code=204)
    async def logout(body: RefreshTokenIn, uows: UowsDep) -> Response:
        await revoke_family(uows, body.refresh_token)
        return Response(status_code=204)

    @router.get("/me", response_model=UserOut)
    async def me(principal: CurrentUser, uows: UowsDep) -> UserOut:
        user = await load_user(uows, principal.user_id)
        if user is None:
            raise Problem(401, kind="invalid-token", detail="The account no longer exists.", headers=BEARER_CHALLENGE)
        return UserOut(id=user.id, email=user.email, role=user.role)

    return router
