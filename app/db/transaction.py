"""What code below the services floor needs of a unit of work: a session, a commit, and a way to open one.

Why protocols and not ``UnitOfWork`` itself: the unit of work lives in app/services (app/services/unit_of_work.py),
a floor above the relay (app/messaging) and the pruning loop (app/db/pruning.py), which may not import upwards
(tests/unit/test_import_floors.py). Anything shaped like it will do, and the one factory the lifespan builds is
what is passed in. See notes/fastapi.md, "App factory and lifespan".
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession


class Transaction(Protocol):
    """One open transaction: its session, and ``commit()``; leaving it without a commit rolls it back."""

    @property
    def session(self) -> AsyncSession: ...

    async def commit(self) -> None: ...


class UnitOfWorkOpener(Protocol):
    """``uows()``: a new transaction on the primary, entered with ``async with``."""

    def __call__(self) -> AbstractAsyncContextManager[Transaction]: ...
