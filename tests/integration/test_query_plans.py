"""The planner's choices, asserted from ``EXPLAIN (ANALYZE, FORMAT JSON)`` on 100k events in a private database.

The event list filtered by city and paged by ``(starts_at, id)`` walks the composite index
``ix_event_city_starts_at_id`` straight to the page: it reads exactly the rows it returns. Without that index
(dropped inside a transaction that rolls back, so nothing else ever sees it gone) the same statement scans
another way and throws rows away. The hold sweeper's statement finds due holds through the partial index
``ix_hold_active_expires_at``. The SQL explained is the app's own, recorded (with its parameters) while the list's use
case and the sweeper ran. See notes/postgres.md, "Plans, indexes and timeouts".
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.services.events import EventFilter, list_events
from app.services.sweeper import HoldSweeper
from app.services.unit_of_work import UnitOfWorkFactory
from bench.catalogue import city, load_events
from stack.native.stack import NativeStack
from tests.plan_nodes import nodes
from tests.private_database import private_database, sqlalchemy_url
from tests.statement_log import Statement, recorded_statements

PAGE = 20
CITIES = 500
SCANS = {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}

HOLDS = """
INSERT INTO hold (event_id, user_id, status, expires_at)
SELECT id, organizer_id, $1, now() + make_interval(secs => $2)
FROM event WHERE city LIKE $3 LIMIT $4
"""


@dataclass(frozen=True)
class Catalogue:
    conn: Any  # asyncpg.Connection, untyped
    dsn: str
    prefix: str


@pytest.fixture(scope="module")
def plans_db(stack: NativeStack) -> Iterator[str]:
    with private_database(stack, "plans") as dsn:
        yield dsn


@pytest.fixture(scope="module")
async def catalogue(plans_db: str) -> AsyncIterator[Catalogue]:
    """100k events over 500 cities (200 each); 100k holds of which 2% are active (half of those due), analyzed."""
    conn = await asyncpg.connect(plans_db)
    try:
        prefix = await load_events(conn, cities=CITIES)
        await conn.execute(HOLDS, "expired", -600, prefix + "%", 98_000)
        await conn.execute(HOLDS, "active", -60, prefix + "%", 1_000)
        await conn.execute(HOLDS, "active", 600, prefix + "%", 1_000)
        await conn.execute("ANALYZE hold")
        yield Catalogue(conn, plans_db, prefix)
    finally:
        await conn.close()


async def explain(conn: Any, statement: Statement, *, first: str | None = None) -> dict[str, Any]:
    """The root plan node of ``EXPLAIN (ANALYZE, FORMAT JSON)`` (after ``first``, if given), in a transaction that
    is rolled back: nothing the statement or ``first`` changed survives."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        if first is not None:
            await conn.execute(first)
        answer = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement.sql}", *statement.parameters)
    finally:
        await transaction.rollback()
    plan: dict[str, Any] = json.loads(answer)[0]["Plan"]
    return plan


def indexes_used(plan: dict[str, Any]) -> set[str]:
    return {node["Index Name"] for node in nodes(plan) if node["Node Type"] in SCANS}


def event_scan(plan: dict[str, Any]) -> dict[str, Any]:
    """The node that reads ``event`` rows (not the seat count's subplan)."""
    return next(node for node in nodes(plan) if node.get("Relation Name") == "event")


async def recorded(dsn: str, use_case: Callable[[AsyncEngine], Awaitable[object]]) -> list[Statement]:
    """Run ``use_case`` on a fresh engine on ``dsn`` and return the statements it sent."""
    engine = create_async_engine(sqlalchemy_url(dsn), pool_size=1, max_overflow=0)
    try:
        with recorded_statements(engine) as statements:
            await use_case(engine)
    finally:
        await engine.dispose()
    return statements


def the_one(statements: list[Statement], starting: str) -> Statement:
    [found] = [s for s in statements if s.sql.lstrip().upper().startswith(starting)]
    return found


async def city_page(catalogue: Catalogue, depth: int) -> Statement:
    """The statement ``GET /events?city=…&cursor=…`` runs for the page ``depth`` events into one city: recorded
    from the list's own use case, with its parameters."""
    wanted = city(catalogue.prefix, 3)
    key = await catalogue.conn.fetchrow(
        "SELECT starts_at, id FROM event WHERE city = $1 ORDER BY starts_at, id OFFSET $2 LIMIT 1", wanted, depth - 1
    )
    after = (key["starts_at"], key["id"])
    statements = await recorded(
        catalogue.dsn,
        lambda engine: list_events(UnitOfWorkFactory(engine, None), EventFilter(city=wanted), after, PAGE + 1),
    )
    return the_one(statements, "SELECT")


async def test_the_city_list_walks_the_composite_index_to_its_page(catalogue: Catalogue) -> None:
    plan = await explain(catalogue.conn, await city_page(catalogue, depth=100))
    print(f"\nwith the index: {event_scan(plan)['Node Type']} on {sorted(indexes_used(plan))}")
    assert "ix_event_city_starts_at_id" in indexes_used(plan)
    scan = event_scan(plan)
    assert scan["Index Name"] == "ix_event_city_starts_at_id"
    assert scan["Actual Rows"] == PAGE + 1  # reads exactly the page (and one more for next_cursor)
    assert scan.get("Rows Removed by Filter", 0) == 0


async def test_without_the_composite_index_the_city_list_scans_and_filters(catalogue: Catalogue) -> None:
    page = await city_page(catalogue, depth=100)
    # DDL is transactional: the rollback puts the index back, untouched, and nobody else ever saw it missing
    plan = await explain(catalogue.conn, page, first="DROP INDEX ix_event_city_starts_at_id")
    scan = event_scan(plan)
    print(f"\nwithout it: {scan['Node Type']} on {scan.get('Index Name')}, removed {scan['Rows Removed by Filter']}")
    assert "ix_event_city_starts_at_id" not in indexes_used(plan)
    assert scan["Node Type"] in {"Seq Scan", "Index Scan", "Bitmap Heap Scan"}
    assert scan["Rows Removed by Filter"] > 10 * PAGE  # other cities' rows read and thrown away
    restored = "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_event_city_starts_at_id'"
    assert await catalogue.conn.fetchval(restored) == 1


async def test_the_sweeper_finds_due_holds_through_the_partial_index(catalogue: Catalogue) -> None:
    swept: list[int] = []

    async def sweep(engine: AsyncEngine) -> None:
        swept.append(await HoldSweeper(UnitOfWorkFactory(engine, None), batch=5000).sweep_once())

    statements = await recorded(catalogue.dsn, sweep)
    assert swept == [1000]
    await catalogue.conn.execute(HOLDS, "active", -30, catalogue.prefix + "%", 500)  # due again, for ANALYZE
    plan = await explain(catalogue.conn, the_one(statements, "UPDATE HOLD"))
    print(f"\nsweeper: {sorted(indexes_used(plan))}")
    assert "ix_hold_active_expires_at" in indexes_used(plan)
    hold_reads = [n for n in nodes(plan) if n.get("Relation Name") == "hold" and n["Node Type"] in SCANS]
    assert [n["Actual Rows"] for n in hold_reads if n["Index Name"] == "ix_hold_active_expires_at"] == [500]
