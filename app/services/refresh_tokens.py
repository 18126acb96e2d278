"""Rotating refresh tokens: start a family at login, rotate on refresh, revoke the family on reuse and on logout.

Why one conditional ``UPDATE`` decides a rotation: "is this token still live?" and "mark it spent" are the same
statement (``... SET spent_at = now() WHERE token_hash = :h AND spent_at IS NULL AND revoked_at IS NULL AND
expires_at > now() RETURNING ...``). Two concurrent refreshes with one token both reach it; the second waits for
the first's row lock, re-checks ``spent_at IS NULL`` against the committed row under READ COMMITTED, and claims
nothing. The successor is inserted in the same transaction, so a refresh either spends its token *and* yields the
next one, or changes nothing. Why a spent token presented again revokes its whole family: only one party can hold
the live end of a chain, so a replay means the token was copied: the thief or the user, whoever refreshes next,
is cut off, and both must log in again. See notes/security.md, "Tokens".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import ColumnElement, func, insert, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.errors import LOCK_NOT_AVAILABLE, sqlstate_of
from app.db.models import RefreshToken, User
from app.resilience.retry import full_jitter_retrying
from app.security.refresh_tokens import new_refresh_token, refresh_token_hash
from app.security.tokens import Principal
from app.services.unit_of_work import UnitOfWorkFactory
from app.services.users import as_role

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Rotation:
    """Who the spent token belonged to (with the role they have *now*) and the token that replaces it."""

    principal: Principal
    refresh_token: str


class InvalidRefreshTokenError(Exception):
    """Unknown, expired, spent or revoked; a spent or revoked one has also revoked its family by now."""


async def start_family(uows: UnitOfWorkFactory, user_id: uuid.UUID, *, ttl_s: int) -> str:
    """The first refresh token of a new family (one family per login)."""
    token = new_refresh_token()
    async with uows() as uow:
        await _add_link(uow.session, user_id, uuid.uuid4(), token, ttl_s)
        await uow.commit()
    return token


async def rotate(uows: UnitOfWorkFactory, presented: str, *, ttl_s: int) -> Rotation:
    """Spend ``presented`` and return its successor, or revoke its family if it was already used, then refuse.

    Many concurrent refreshes with one token queue on its row (and the losers on the family's rows while the first
    of them revokes it); one that gives up at ``lock_timeout`` changed nothing, so it is run once more, and by then
    the race is decided: the re-run answers as every other loser does, instead of a 409 that would tell them
    apart."""
    retrying = full_jitter_retrying(
        max_attempts=2,
        deadline_s=None,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        retry_if=lambda error: sqlstate_of(error) == LOCK_NOT_AVAILABLE,
    )
    rotation: Rotation = await retrying(_rotate_once, uows, presented, ttl_s)
    return rotation


async def _rotate_once(uows: UnitOfWorkFactory, presented: str, ttl_s: int) -> Rotation:
    token_hash = refresh_token_hash(presented)
    async with uows() as uow:
        spend = (
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == token_hash,
                RefreshToken.spent_at.is_(None),
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > func.now(),
                User.id == RefreshToken.user_id,
            )
            .values(spent_at=func.now())
            .returning(RefreshToken.user_id, RefreshToken.family_id, User.role)
            .execution_options(synchronize_session=False)
        )
        claimed = (await uow.session.execute(spend)).one_or_none()
        if claimed is not None:
            successor = new_refresh_token()
            await _add_link(uow.session, claimed.user_id, claimed.family_id, successor, ttl_s)
            await uow.commit()
            return Rotation(Principal(user_id=claimed.user_id, role=as_role(claimed.role)), successor)
        used = or_(RefreshToken.spent_at.is_not(None), RefreshToken.revoked_at.is_not(None))
        revoked = await _revoke_family(uow.session, token_hash, used)
        await uow.commit()
    if revoked:
        user_id, family_id = revoked[0]
        log.warning("refresh_token_reused", user_id=str(user_id), family_id=str(family_id), revoked_links=len(revoked))
    raise InvalidRefreshTokenError("unknown, expired, spent or revoked refresh token")


async def revoke_family(uows: UnitOfWorkFactory, presented: str) -> None:
    """Logout: every link of the presented token's family stops working; unknown tokens change nothing."""
    async with uows() as uow:
        await _revoke_family(uow.session, refresh_token_hash(presented), true())
        await uow.commit()


async def _add_link(session: AsyncSession, user_id: uuid.UUID, family_id: uuid.UUID, token: str, ttl_s: int) -> None:
    link = insert(RefreshToken).values(
        user_id=user_id,
        family_id=family_id,
        token_hash=refresh_token_hash(token),
        expires_at=func.now() + timedelta(seconds=ttl_s),
    )
    await session.execute(link)


async def _revoke_family(
    session: AsyncSession, token_hash: str, presented_if: ColumnElement[bool]
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Revoke the live links of the family whose token has ``token_hash``, if that token matches ``presented_if``;
    returns ``(user_id, family_id)`` of each link it revoked."""
    family = select(RefreshToken.family_id).where(RefreshToken.token_hash == token_hash, presented_if)
    revoke = (
        update(RefreshToken)
        .where(RefreshToken.family_id == family.scalar_subquery(), RefreshToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(RefreshToken.user_id, RefreshToken.family_id)
        .execution_options(synchronize_session=False)
    )
    return [(row.user_id, row.family_id) for row in await session.execute(revoke)]
