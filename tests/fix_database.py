"""A fixture for tests that write or read the session stack's primary directly, past the fault proxy: ``engine``,
a small SQLAlchemy engine of their own (the app's pools are the app's). A pytest plugin, listed in tests/conftest.py.
See notes/postgres.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from stack.native.stack import NativeStack
from tests.private_database import sqlalchemy_url


@pytest.fixture
async def engine(stack: NativeStack) -> AsyncIterator[AsyncEngine]:
    made = create_async_engine(sqlalchemy_url(stack.primary.direct_url), pool_size=2, max_overflow=0)
    try:
        yield made
    finally:
        await made.dispose()
