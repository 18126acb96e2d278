"""Registering a user and checking credentials: the use cases behind ``/auth/register`` and ``/auth/token``.

Why hashing runs in a thread: argon2 takes tens of milliseconds of CPU by design, and on the event loop that would
stall every other request of the worker. See notes/security.md, "Passwords".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from starlette.concurrency import run_in_threadpool

from app.db.models import User
from app.security.passwords import PasswordHasher
from app.security.tokens import Principal, Role
from app.services.unit_of_work import UnitOfWorkFactory


@dataclass(frozen=True)
class RegisteredUser:
    id: uuid.UUID
    email: str
    role: Role


class EmailTakenError(Exception):
    """Another account already uses this email (compared case-insensitively)."""


async def register_user(uows: UnitOfWorkFactory, hasher: PasswordHasher, email: str, password: str) -> RegisteredUser:
    """Insert the user; the unique index on the citext email decides races, not a prior SELECT."""
    password_hash = await run_in_threadpool(hasher.hash, password)
    async with uows() as uow:
        statement = (
            insert(User)
            .values(email=email, password_hash=password_hash, role="user")
            .on_conflict_do_nothing(index_elements=[User.email])
            .returning(User.id, User.email, User.role)
        )
        row = (await uow.session.execute(statement)).one_or_none()
        if row is None:
            raise EmailTakenError(email)
        await uow.commit()
    return RegisteredUser(id=row.id, email=row.email, role=as_role(row.role))


def as_role(value: str) -> Role:
    return "organizer" if value == "organizer" else "user"


async def load_user(uows: UnitOfWorkFactory, user_id: uuid.UUID) -> RegisteredUser | None:
    async with uows() as uow:
        user = await uow.session.get(User, user_id)
        return None if user is None else RegisteredUser(id=user.id, email=user.email, role=as_role(user.role))


async def authenticate(uows: UnitOfWorkFactory, hasher: PasswordHasher, email: str, password: str) -> Principal | None:
    """The principal for valid credentials, else None — after the same work for unknown emails and bad passwords."""
    async with uows() as uow:
        user = (await uow.session.execute(select(User).where(User.email == email))).scalar_one_or_none()
        verification = await run_in_threadpool(hasher.verify, password, user.password_hash if user else None)
        if user is None or not verification.ok:
            return None
        if verification.new_hash is not None:
            await uow.session.execute(
                update(User).where(User.id == user.id).values(password_hash=verification.new_hash)
            )
            await uow.commit()
        return Principal(user_id=user.id, role=as_role(user.role))
