"""Two anomalies in ticketing clothes and their cures, on the private primary with private tables.

A lost update: two organizers raise an event's price at once by reading it and writing back a sum computed in
Python; under READ COMMITTED one raise disappears. Cured by doing the arithmetic in the UPDATE, or by reading
with FOR UPDATE. Write skew: two organizers each check that a hall still has room for a 300-seat show that
evening and each book one; under REPEATABLE READ both commit and the hall (500 seats) is oversold. Cured by
SERIALIZABLE, which aborts one with 40001, and ``run_serializable``, which runs it again to a clean refusal.
See notes/postgres.md ("Isolation levels, proved").
"""

from __future__ import annotations

import asyncio
import datetime
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from app.resilience.serializable import run_serializable
from stack.native.stack import NativeStack
from tests.isolation.hermitage import Interleaving, Tx

PRICE, RAISES = 5000, (500, 1000)
HALL_SEATS, SHOW_SEATS = 500, 300
RENDEZVOUS_DEADLINE_S = 5.0
EVENING = datetime.date(2030, 6, 1)


@dataclass
class Room:
    """A private table, an observer in autocommit, and two organizers' connections."""

    table: str
    observer: asyncpg.Connection
    organizers: tuple[asyncpg.Connection, asyncpg.Connection]

    def interleaving(self) -> Interleaving:
        return Interleaving(
            self.table, [Tx(f"organizer {n}", c) for n, c in enumerate(self.organizers, 1)], self.observer
        )


async def room(dsn: str, prefix: str, columns: str) -> Room:
    table = f"{prefix}_{secrets.token_hex(4)}"
    observer = await asyncpg.connect(dsn)
    await observer.execute(f"create table {table} ({columns})")
    first, second = await asyncio.gather(asyncpg.connect(dsn), asyncpg.connect(dsn))
    return Room(table, observer, (first, second))


async def close(place: Room) -> None:
    await asyncio.gather(*(conn.close() for conn in place.organizers))
    await place.observer.execute(f"drop table {place.table}")
    await place.observer.close()


@pytest.fixture
async def event(stack: NativeStack) -> AsyncIterator[Room]:
    """One event priced 5000 cents in a private ``event_<hex>`` table."""
    place = await room(stack.primary.direct_url, "event", "id int primary key, title text not null, price_cents int")
    await place.observer.execute(f"insert into {place.table} values (1, 'Flash sale night', {PRICE})")
    try:
        yield place
    finally:
        await close(place)


@pytest.fixture
async def hall(stack: NativeStack) -> AsyncIterator[Room]:
    """A private ``show_<hex>`` table: shows booked into one 500-seat hall, by evening."""
    columns = "id serial primary key, organizer text not null, evening date not null, seats int not null"
    place = await room(stack.primary.direct_url, "show", columns)
    try:
        yield place
    finally:
        await close(place)


async def price(place: Room) -> int:
    value: int = await place.observer.fetchval(f"select price_cents from {place.table} where id = 1")
    return value


async def test_read_then_write_loses_a_price_raise_under_read_committed(event: Room) -> None:
    first, second = event.organizers
    for conn in event.organizers:
        await conn.execute("begin isolation level read committed")
    seen = [await conn.fetchval(f"select price_cents from {event.table} where id = 1") for conn in event.organizers]
    await first.execute(f"update {event.table} set price_cents = $1 where id = 1", seen[0] + RAISES[0])
    await first.execute("commit")
    await second.execute(f"update {event.table} set price_cents = $1 where id = 1", seen[1] + RAISES[1])
    await second.execute("commit")
    assert await price(event) == PRICE + RAISES[1]  # the first raise is gone, and nobody was told


async def test_arithmetic_in_the_update_keeps_both_raises(event: Room) -> None:
    lab = event.interleaving()
    for tx in lab.txs:
        await tx.conn.execute("begin isolation level read committed")
    raise_by = "update {t} set price_cents = price_cents + %d where id = 1"
    await lab.write(lab.t1, raise_by % RAISES[0])
    waiting = await lab.expecting_wait(lab.t2, lab.write(lab.t2, raise_by % RAISES[1]))
    await lab.commit(lab.t1)
    assert await waiting  # re-evaluated on the committed 5500, not on the 5000 it would have read before
    await lab.commit(lab.t2)
    assert lab.blocked
    assert await price(event) == PRICE + sum(RAISES)


async def test_reading_for_update_makes_the_second_editor_read_the_first_raise(event: Room) -> None:
    lab = event.interleaving()
    for tx in lab.txs:
        await tx.conn.execute("begin isolation level read committed")
    lock = f"select price_cents from {event.table} where id = 1 for update"
    set_price = f"update {event.table} set price_cents = $1 where id = 1"
    first_read = await lab.t1.conn.fetchval(lock)
    waiting = await lab.expecting_wait(lab.t2, lab.t2.conn.fetchval(lock))
    await lab.t1.conn.execute(set_price, first_read + RAISES[0])
    await lab.commit(lab.t1)
    second_read = await waiting
    await lab.t2.conn.execute(set_price, second_read + RAISES[1])
    await lab.commit(lab.t2)
    assert (lab.blocked, first_read, second_read) == (True, PRICE, PRICE + RAISES[0])
    assert await price(event) == PRICE + sum(RAISES)


@dataclass
class Organizer:
    """Books a 300-seat show on the evening if the hall still has room; counts its attempts.

    On its first attempt the organizer waits at the barrier after checking, so both decide on the same empty
    hall. A retry finds the barrier behind it and decides on what is committed by then.
    """

    name: str
    conn: asyncpg.Connection
    table: str
    isolation: str
    both_checked: asyncio.Barrier
    attempts: int = 0

    async def book(self) -> bool:
        self.attempts += 1
        async with self.conn.transaction(isolation=self.isolation):
            taken = await self.conn.fetchval(
                f"select coalesce(sum(seats), 0) from {self.table} where evening = $1", EVENING
            )
            if self.attempts == 1:
                async with asyncio.timeout(RENDEZVOUS_DEADLINE_S):
                    await self.both_checked.wait()
            if taken + SHOW_SEATS > HALL_SEATS:
                return False
            insert = f"insert into {self.table} (organizer, evening, seats) values ($1, $2, $3)"
            await self.conn.execute(insert, self.name, EVENING, SHOW_SEATS)
            return True


def organizers(hall: Room, isolation: str) -> list[Organizer]:
    barrier = asyncio.Barrier(len(hall.organizers))
    return [Organizer(f"organizer {n}", c, hall.table, isolation, barrier) for n, c in enumerate(hall.organizers, 1)]


async def seats_sold(hall: Room) -> int:
    value: int = await hall.observer.fetchval(f"select coalesce(sum(seats), 0) from {hall.table}")
    return value


async def test_two_organizers_oversell_the_hall_under_repeatable_read(hall: Room) -> None:
    pair = organizers(hall, "repeatable_read")
    assert await asyncio.gather(*(o.book() for o in pair)) == [True, True]
    assert await seats_sold(hall) == 2 * SHOW_SEATS > HALL_SEATS


async def test_serializable_aborts_one_booking_of_the_hall_with_40001(hall: Room) -> None:
    pair = organizers(hall, "serializable")
    results = await asyncio.gather(*(o.book() for o in pair), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["SerializationError", "bool"]
    assert await seats_sold(hall) == SHOW_SEATS


async def test_serializable_with_a_bounded_retry_refuses_the_second_show_in_the_hall(hall: Room) -> None:
    pair = organizers(hall, "serializable")
    results = await asyncio.gather(
        *(run_serializable(o.book, attempts=3, backoff_base_s=0.01, backoff_max_s=0.05) for o in pair)
    )
    assert sorted(results) == [False, True]  # one booked; the other, run again, saw the hall full
    assert sorted(o.attempts for o in pair) == [1, 2]
    assert await seats_sold(hall) == SHOW_SEATS
