"""A searchable catalogue in one statement: 100k events whose titles name performers, genres and cities with
accents, behind the search plan tests and ``bench.search``.

Why made-up performers: 500 names of five syllables (a fixed seed, so every run has the same ones) give each name
200 events, 0.2 % of the table, like a real artist in a real catalogue; a search for one is selective, which is what
an index is for, while ``ILIKE '%name%'`` must still read every title. Cities take turns along the rows and carry
accents ("Zürich", "Kraków"), so the folded search is exercised at scale. One ``INSERT … SELECT generate_series``
loads it server-side in seconds, then ``VACUUM ANALYZE``: a GIN index takes bulk inserts into a pending list
(``fastupdate``) that every search must read linearly until a vacuum merges it, and the planner prices that in (on
100k fresh rows it chose a sequential scan). See notes/elasticsearch.md, "Prove it".
"""

from __future__ import annotations

import random
import secrets

import asyncpg

EVENTS = 100_000
PERFORMERS = 500
CITIES = ("Zürich", "Kraków", "München", "São Paulo", "Málaga", "Berlin", "Lisbon", "Warsaw", "Göteborg", "Porto")
GENRES = ("Recital", "Quartet", "Live", "Night", "Festival", "Session", "Matinee", "Tour", "Gala", "Unplugged")
VENUES = ("Tonhalle", "Filharmonia", "Coliseu", "Velodrom", "Arena", "Opera House", "Jazz Club", "Town Hall")

_LOAD = """
WITH owner AS (
    INSERT INTO app_user (email, password_hash) VALUES ($1, 'x') RETURNING id
)
INSERT INTO event (organizer_id, title, city, venue, starts_at, price_cents, rows, seats_per_row)
SELECT owner.id,
       ($2::text[])[1 + g % $6] || ' ' || ($3::text[])[1 + (g / 7) % $7] || ' ' || g,
       ($4::text[])[1 + (g / 3) % $8],
       ($5::text[])[1 + (g / 11) % $9],
       timestamptz '2027-01-01' + g * interval '1 minute', 1000, 1, 1
FROM owner, generate_series(1, $10) AS g
"""


def performers(count: int = PERFORMERS) -> list[str]:
    """The catalogue's performer names: the same ones every run."""
    draw = random.Random(20261130)
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    names: list[str] = []
    while len(names) < count:
        name = "".join(draw.choices(syllables, k=5)).capitalize()
        if name not in names:
            names.append(name)
    return names


async def load_search_catalogue(conn: asyncpg.Connection, *, events: int = EVENTS) -> str:
    """Insert ``events`` events by this module's rules, analyze, and return their organizer's email."""
    owner = f"search-catalogue-{secrets.token_hex(6)}@example.com"
    names = performers()
    await conn.execute(
        _LOAD,
        owner,
        names,
        list(GENRES),
        list(CITIES),
        list(VENUES),
        len(names),
        len(GENRES),
        len(CITIES),
        len(VENUES),
        events,
    )
    await conn.execute("VACUUM ANALYZE event")  # also merges the GIN indexes' pending lists (see the note)
    return owner
