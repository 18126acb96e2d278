"""The PostgreSQL search's plans on 100k events in a private database, from ``EXPLAIN (ANALYZE, FORMAT JSON)`` of the
statement the search use case itself sent (recorded with its parameters).

A performer's name (0.2 % of the events) is answered by the exact pass alone, through the ``tsvector`` GIN index: the
heap is visited only for the 200 rows the index named, never scanned. A misspelt name finds nothing exactly and goes
on to the full statement, which ORs that index with the trigram one as bitmaps. Without the indexes (dropped in a
transaction that rolls back) the full statement reads all 100k rows.
See notes/elasticsearch.md, "The PostgreSQL fallback".
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from app.domain.search_query import parse_query
from app.search.page import SearchRequest
from app.services.search import search_on_postgres
from app.services.unit_of_work import UnitOfWorkFactory
from bench.search_catalogue import EVENTS, PERFORMERS, load_search_catalogue, performers
from stack.native.stack import NativeStack
from tests.plan_nodes import nodes
from tests.private_database import private_database, sqlalchemy_url
from tests.statement_log import Statement, recorded_statements

GIN_INDEXES = {"ix_event_search_vector", "ix_event_search_text_trgm"}


@pytest.fixture(scope="module")
def search_db(stack: NativeStack) -> Iterator[str]:
    with private_database(stack, "search_plans") as dsn:
        yield dsn


@pytest.fixture(scope="module")
async def conn(search_db: str) -> AsyncIterator[Any]:
    connection = await asyncpg.connect(search_db)
    try:
        await load_search_catalogue(connection)
        yield connection
    finally:
        await connection.close()


async def recorded_search(dsn: str, q: str) -> tuple[list[Statement], int]:
    """The SELECTs the search use case sends for ``q`` (the exact pass, then the full one if needed), and how many
    hits it returned."""
    engine = create_async_engine(sqlalchemy_url(dsn), pool_size=1, max_overflow=0)
    try:
        with recorded_statements(engine) as statements:
            hits = await search_on_postgres(UnitOfWorkFactory(engine, None), SearchRequest(parse_query(q), fetch=21))
    finally:
        await engine.dispose()
    return [s for s in statements if s.sql.lstrip().upper().startswith("SELECT")], len(hits)


async def explain(conn: Any, statement: Statement, *, first: str | None = None) -> dict[str, Any]:
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


def event_reads(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [node for node in nodes(plan) if node.get("Relation Name") == "event"]


def index_names(plan: dict[str, Any]) -> set[str]:
    return {node["Index Name"] for node in nodes(plan) if "Index Name" in node}


async def test_a_performer_is_found_by_the_exact_pass_through_the_vector_index(conn: Any, search_db: str) -> None:
    name = performers()[7]
    [exact], hits = await recorded_search(search_db, name)  # a full page: the trigram pass is never run
    assert hits == 21  # a full page (and one more): EVENTS / PERFORMERS of them match
    plan = await explain(conn, exact)
    print(f"\n{name}: {sorted(index_names(plan))}, event reads {[n['Node Type'] for n in event_reads(plan)]}")
    assert index_names(plan) == {"ix_event_search_vector"}
    [heap] = event_reads(plan)
    assert heap["Node Type"] == "Bitmap Heap Scan"
    assert heap["Actual Rows"] == EVENTS // PERFORMERS  # every row read is a match: nothing scanned and thrown away


async def test_a_misspelt_performer_is_found_through_both_gin_indexes(conn: Any, search_db: str) -> None:
    name = performers()[7]
    [exact, near], hits = await recorded_search(search_db, name[:4] + name[5:])
    assert hits == 21
    plan = await explain(conn, near)
    print(f"\nmisspelt: {sorted(index_names(plan))}")
    assert index_names(plan) >= GIN_INDEXES
    assert all(node["Node Type"] != "Seq Scan" for node in event_reads(plan))
    assert [n["Actual Rows"] for n in event_reads(await explain(conn, exact))] == [0]


async def test_without_the_indexes_every_event_is_read(conn: Any, search_db: str) -> None:
    [_, near], _ = await recorded_search(search_db, performers()[7][:9])  # a prefix: both passes
    plan = await explain(conn, near, first="DROP INDEX ix_event_search_vector; DROP INDEX ix_event_search_text_trgm")
    [scan] = event_reads(plan)
    print(f"\nwithout them: {scan['Node Type']}, removed {scan.get('Rows Removed by Filter')}")
    assert scan["Node Type"] == "Seq Scan"
    assert scan["Actual Rows"] + scan["Rows Removed by Filter"] >= EVENTS
