"""A large event catalogue in one statement: the data set behind the plan tests and the pagination benchmark.

Why one ``INSERT … SELECT generate_series``: 100k events load in about a second, server-side, with no rows
crossing the wire. Cities take turns (``g % cities``) along ``starts_at``, so one city's events are spread over
the whole table, which is what makes an index on ``starts_at`` alone a poor access path for a city's list.
``ANALYZE`` afterwards gives the planner the statistics it plans with. See notes/postgres.md, "Plans, indexes
and timeouts".
"""

from __future__ import annotations

import secrets

import asyncpg

EVENTS = 100_000

_LOAD = """
WITH owner AS (
    INSERT INTO app_user (email, password_hash) VALUES ($1, 'x') RETURNING id
)
INSERT INTO event (organizer_id, title, city, venue, starts_at, price_cents, rows, seats_per_row)
SELECT owner.id, 'Event ' || g, $2 || (g % $4), 'Hall', timestamptz '2027-01-01' + g * interval '1 minute', 1000, 1, 1
FROM owner, generate_series(1, $3) AS g
"""


def city(prefix: str, n: int) -> str:
    """The name of the ``n``-th city of a catalogue loaded with ``prefix``."""
    return f"{prefix}{n}"


async def load_events(conn: asyncpg.Connection, *, events: int = EVENTS, cities: int = 20) -> str:
    """Insert ``events`` events over ``cities`` cities, analyze, and return the city prefix (see ``city``)."""
    prefix = f"cat-{secrets.token_hex(4)}-"
    owner = f"catalogue-{secrets.token_hex(6)}@example.com"
    await conn.execute(_LOAD, owner, prefix, events, cities)
    await conn.execute("ANALYZE event")
    return prefix


async def unload_events(conn: asyncpg.Connection, prefix: str) -> None:
    """Delete a catalogue and its organizer (for a shared database; a private one is simply dropped)."""
    organizers = await conn.fetch("DELETE FROM event WHERE city LIKE $1 RETURNING organizer_id", prefix + "%")
    await conn.execute("DELETE FROM app_user WHERE id = ANY($1::uuid[])", list({row[0] for row in organizers}))
