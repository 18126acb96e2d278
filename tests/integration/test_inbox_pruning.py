"""The inbox keeps what each consumer applied for ``inbox_retention_s``, then the worker deletes it in batches.

Rows are planted with an ``applied_at`` in the past under a consumer name of the test's own, so the counts are exact
whatever else the run has consumed. The batch loop (app/worker/inbox.py through app/db/pruning.py) is called
directly with a one-hour retention on rows two hours old: exactly the 2,500 go, in batches of 1,000, and the
recent rows stay. The worker's own job (every second in the test stack, conftest.py) is then watched deleting rows
older than the production retention (seven days) on its own, and counted at its /metrics. See notes/rabbitmq.md,
"Pruning the inbox".
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.services.unit_of_work import UnitOfWorkFactory
from app.settings import Settings
from app.worker.inbox import prune_inbox
from stack.native.stack import NativeStack, asyncpg_url
from tests.polling import wait_for
from tests.probes import http

OLD, RECENT = 2_500, 5


@pytest.fixture
async def engine(stack: NativeStack) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(asyncpg_url(stack.primary.url))
    try:
        yield engine
    finally:
        await engine.dispose()


def plant(stack: NativeStack, consumer: str, *, rows: int, age: str) -> None:
    stack.primary.sql(
        "INSERT INTO inbox (consumer, message_id, message_type, applied_at)"
        f" SELECT '{consumer}', gen_random_uuid(), 'hold.placed', now() - interval '{age}'"
        f" FROM generate_series(1, {rows})",
        "refstack",
    )


def rows_of(stack: NativeStack, consumer: str) -> int:
    return int(stack.primary.sql(f"SELECT count(*) FROM inbox WHERE consumer = '{consumer}'", "refstack"))


def pruner_runs(stack: NativeStack) -> float:
    text = http("GET", f"{stack.worker.url}/metrics")[2].decode()
    found = re.search(r'^background_job_runs_total\{job="inbox-pruner",outcome="ok"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_rows_past_the_retention_go_in_batches_and_recent_ones_stay(
    stack: NativeStack, engine: AsyncEngine
) -> None:
    consumer = f"prune-{uuid.uuid4().hex[:12]}"
    plant(stack, consumer, rows=OLD, age="2 hours")
    plant(stack, consumer, rows=RECENT, age="1 minute")
    pruned = await prune_inbox(UnitOfWorkFactory(engine, None), older_than_s=3600, batch=1000)
    assert pruned == OLD  # nothing else in the stack is an hour old: its consumers applied theirs minutes ago
    assert rows_of(stack, consumer) == RECENT


def test_the_worker_prunes_rows_older_than_the_production_retention_on_its_own(stack: NativeStack) -> None:
    assert Settings().inbox_retention_s == 7 * 24 * 3600.0
    consumer = f"prune-{uuid.uuid4().hex[:12]}"
    runs = pruner_runs(stack)
    plant(stack, consumer, rows=OLD, age="8 days")
    plant(stack, consumer, rows=RECENT, age="6 days")
    wait_for(lambda: rows_of(stack, consumer) == RECENT, timeout_s=15, what="the worker's pruner deleting old rows")
    assert pruner_runs(stack) > runs
