"""No N+1: the event list and ``/me/bookings`` send the same number of statements for a page of 5 or of 50; and an
uncached event read is one round trip to PostgreSQL.

Each use case runs as the app runs it (units of work from a ``UnitOfWorkFactory`` with the per-transaction timeouts)
on an engine whose ``before_cursor_execute`` hook records every statement (tests/statement_log.py). The count is
exact: the ``set_config`` of the timeouts, then one statement for the page, its seat counts or seat ids included. A
lazy load per row, or a query per event for its seats, would make 50 rows cost 45 statements more than 5. The data
is this module's own (one organizer who is also the buyer, 60 events in a city nobody else uses, a booking per
event), in the session's database. See notes/postgres.md, "Plans, indexes and timeouts".

The round trip is counted on the wire (tests/pg_wire.py: a relay that records every message the driver sends), as
the app's own engine (``build_engine``: the timeouts in the startup packet) and factory make it: one Bind, one
Execute, one Sync, with no ``BEGIN``, ``set_config`` or ``ROLLBACK`` around it; the same read inside a unit of work
with per-transaction timeouts (what every read did before, and what a transaction pooler still needs) costs four.
See notes/postgres.md, "One read, one round trip".
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from pydantic import PostgresDsn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.db.engines import build_engine
from app.db.models import Event
from app.services.bookings import list_bookings
from app.services.events import EventFilter, find_event, list_events
from app.services.unit_of_work import TransactionTimeouts, UnitOfWorkFactories, UnitOfWorkFactory
from app.settings import Settings
from stack.native.stack import NativeStack
from tests.pg_wire import WireRecorder
from tests.private_database import sqlalchemy_url
from tests.statement_log import recorded_statements

EVENTS = 60
SIZES = (5, 50)
STATEMENTS_PER_PAGE = 2  # set_config(lock_timeout, statement_timeout), then the page
TIMEOUTS = TransactionTimeouts(lock_ms=2000, statement_ms=4000)

SEED = """
WITH buyer AS (
    INSERT INTO app_user (email, password_hash, role) VALUES ($1, 'x', 'organizer') RETURNING id
), shows AS (
    INSERT INTO event (organizer_id, title, city, venue, starts_at, price_cents, rows, seats_per_row)
    SELECT buyer.id, 'Count ' || g, $2, 'Hall', timestamptz '2028-01-01' + g * interval '1 hour', 100, 1, 2
    FROM buyer, generate_series(1, $3) AS g
    RETURNING id, organizer_id
), holds AS (
    INSERT INTO hold (event_id, user_id, status, expires_at)
    SELECT id, organizer_id, 'booked', now() FROM shows RETURNING id, event_id, user_id
), seats AS (
    INSERT INTO seat (event_id, row, number, status, hold_id)
    SELECT event_id, 1, n, 'sold', id FROM holds, generate_series(1, 2) AS n
), booked AS (
    INSERT INTO booking (user_id, event_id, hold_id, amount_cents, payment_id)
    SELECT user_id, event_id, id, 200, 'count-' || id FROM holds RETURNING user_id
)
SELECT DISTINCT user_id FROM booked
"""


@dataclass(frozen=True)
class Shop:
    engine: AsyncEngine
    city: str
    buyer: uuid.UUID


@pytest.fixture(scope="module")
async def shop(stack: NativeStack) -> AsyncIterator[Shop]:
    city = f"Counted-{secrets.token_hex(4)}"
    conn = await asyncpg.connect(stack.primary.direct_url)
    try:
        buyer = await conn.fetchval(SEED, f"count-{secrets.token_hex(6)}@example.com", city, EVENTS)
    finally:
        await conn.close()
    engine = create_async_engine(sqlalchemy_url(stack.primary.direct_url), pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as warm:  # the dialect's first-connect queries are not the use case's
            await warm.execute(text("SELECT 1"))
        yield Shop(engine, city, buyer)
    finally:
        await engine.dispose()


async def test_the_event_list_sends_the_same_statements_for_any_page_size(shop: Shop) -> None:
    counts = {}
    for size in SIZES:
        with recorded_statements(shop.engine) as statements:
            rows = await list_events(
                UnitOfWorkFactory(shop.engine, TIMEOUTS), EventFilter(city=shop.city), None, size + 1
            )
        assert len(rows) == size + 1
        assert all(row.seats_available == 0 for row in rows)  # every seat sold, counted in the same statement
        counts[size] = len(statements)
    assert counts == dict.fromkeys(SIZES, STATEMENTS_PER_PAGE)


async def test_my_bookings_sends_the_same_statements_for_any_page_size(shop: Shop) -> None:
    counts = {}
    for size in SIZES:
        with recorded_statements(shop.engine) as statements:
            page = await list_bookings(
                UnitOfWorkFactory(shop.engine, TIMEOUTS), user_id=shop.buyer, before=None, fetch=size
            )
        assert len(page) == size
        assert all(len(booking.seat_ids) == 2 for booking in page)  # seat ids came with the page
        counts[size] = len(statements)
    assert counts == dict.fromkeys(SIZES, STATEMENTS_PER_PAGE)


async def test_an_uncached_event_read_is_one_round_trip_bounded_by_its_connection(
    stack: NativeStack, shop: Shop
) -> None:
    conn = await asyncpg.connect(stack.primary.direct_url)
    try:
        event_id = await conn.fetchval("SELECT id FROM event WHERE city = $1 LIMIT 1", shop.city)
    finally:
        await conn.close()
    async with WireRecorder(stack.primary.port).running() as wire:
        url = stack.primary.direct_url.replace(f":{stack.primary.port}/", f":{wire.port}/")
        settings = Settings(database_url=PostgresDsn(url), db_lock_timeout_ms=1234, db_statement_timeout_ms=3456)
        engine = build_engine(settings.database_url, settings)
        uows = UnitOfWorkFactories(engine, None, TransactionTimeouts.of(settings), on_connection=(engine,)).primary
        try:
            await find_event(uows, uuid.uuid4())  # connect, the dialect's first queries, the statement prepared
            wire.messages.clear()
            record = await find_event(uows, event_id)
            assert record is not None
            assert record.id == event_id
            assert (wire.messages, wire.round_trips()) == (["B", "E", "S"], 1)

            async with uows.read() as session:  # the bounds came with the connection, not with a statement
                bounds = (
                    await session.execute(
                        text("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')")
                    )
                ).one()
            assert tuple(bounds) == ("1234ms", "3456ms")

            wire.messages.clear()
            async with UnitOfWorkFactory(engine, TIMEOUTS)() as uow:  # the read as a transaction with SET LOCAL
                assert await uow.session.get(Event, event_id) is not None
            assert wire.round_trips() == 4  # BEGIN, set_config, the SELECT, ROLLBACK
            assert wire.messages.count("Q") == 2
        finally:
            await engine.dispose()
