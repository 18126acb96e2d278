"""A unit of work is one transaction, entered once; the factory makes a new one per call from one sessionmaker.
Nothing here reaches a database: entering without timeouts sends no statement. See notes/postgres.md,
"Contention".
"""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from app.services.unit_of_work import TransactionTimeouts, UnitOfWorkFactories, UnitOfWorkFactory

NOWHERE = "postgresql+asyncpg://nobody:nothing@127.0.0.1:9/none"


async def test_a_unit_of_work_refuses_to_be_entered_twice() -> None:
    engine = create_async_engine(NOWHERE)
    uows = UnitOfWorkFactory(engine, None)
    uow = uows()
    async with uow:
        with pytest.raises(RuntimeError, match="one transaction"):
            async with uow:
                pass
    with pytest.raises(RuntimeError, match="one transaction"):
        async with uow:
            pass
    async with uows() as fresh:  # the next transaction is the next unit of work
        assert fresh is not uow
    await engine.dispose()


async def test_the_factories_pick_the_factory_of_the_engine_the_router_chose() -> None:
    primary, replica, stranger = (create_async_engine(NOWHERE) for _ in range(3))
    factories = UnitOfWorkFactories(primary, replica, TransactionTimeouts(lock_ms=500, statement_ms=4000))
    assert factories.on(primary) is factories.primary
    assert factories.replica is not None
    assert factories.on(replica) is factories.replica
    with pytest.raises(LookupError):
        factories.on(stranger)
    assert UnitOfWorkFactories(primary, None, TransactionTimeouts(1, 1)).replica is None
    for engine in (primary, replica, stranger):
        await engine.dispose()
