"""A fresh database on the test stack's primary, migrated to head, that the running app knows nothing about.

Why: tests that count rows the app's own workers could touch (the sweepers), or that load 100k rows and drop an
index, must not share the app's ``refstack`` database. Each gets ``<prefix>_<hex>``, owned by ``app`` and built by
the same ``alembic upgrade head`` the stack runs, and dropped afterwards (``WITH (FORCE)``: leftover connections
do not keep it alive). See notes/postgres.md, "Contention" and "Plans, indexes and timeouts".
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stack.native.stack import NativeStack

REPO = Path(__file__).resolve().parents[1]


def sqlalchemy_url(dsn: str) -> str:
    """``postgresql://…`` as the app's driver spells it."""
    return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


@contextmanager
def private_database(stack: NativeStack, prefix: str) -> Iterator[str]:
    """Yield the database's plain ``postgresql://`` DSN (for asyncpg; see ``sqlalchemy_url`` for an engine)."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    stack.primary.sql(f"CREATE DATABASE {name} OWNER app")
    try:
        dsn = stack.primary.direct_url.rsplit("/", 1)[0] + f"/{name}"
        migrated = subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=REPO,
            env={**os.environ, "REFSTACK_DATABASE_URL": sqlalchemy_url(dsn)},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if migrated.returncode != 0:
            raise AssertionError(f"alembic upgrade head on {name}: {migrated.stderr[-2000:]}")
        yield dsn
    finally:
        stack.primary.sql(f"DROP DATABASE {name} WITH (FORCE)")
