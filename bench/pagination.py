"""Keyset against OFFSET pagination at deep pages of the event list, on 100k events of one city.

Why measure it: ``OFFSET n`` makes PostgreSQL produce and throw away ``n`` rows before the page, so a page costs
more the deeper it is; a keyset page (``(starts_at, id) > (:last_starts_at, :last_id)``) starts at its key in the
index and costs the same at any depth. Both statements are the app's own list query
(``app.services.events.listing_query``); the OFFSET one only swaps the key for ``.offset(depth)``. Each time is the
median of several runs on one warm connection. See notes/postgres.md, "Plans, indexes and timeouts".

Run: ``make bench`` or ``.venv/bin/python -m bench.pagination [--dsn postgresql://…] [--repeats 7]``. Without
``--dsn`` it starts its own stack on free ports; with one, it loads its events there and deletes them afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import asyncpg
from pydantic import PostgresDsn
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.db.engines import asyncpg_url
from app.services.events import EventFilter, listing_query
from bench.catalogue import EVENTS, city, load_events, unload_events
from stack.native.layout import Layout
from stack.native.stack import NativeStack

PAGE = 20
DEPTHS = (0, 1_000, 10_000, 50_000, 99_000)


async def median_ms(conn: AsyncConnection, query: Select[Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        rows = (await conn.execute(query)).all()
        times.append((time.perf_counter() - began) * 1000)
        if len(rows) != PAGE + 1:
            raise RuntimeError(f"expected a full page, got {len(rows)} rows")
    return statistics.median(times)


async def measure(dsn: str, repeats: int) -> list[tuple[int, float, float]]:
    """``(depth, keyset ms, offset ms)`` per depth in ``DEPTHS``."""
    loader = await asyncpg.connect(dsn)
    engine = create_async_engine(asyncpg_url(PostgresDsn(dsn)), pool_size=1, max_overflow=0)
    prefix = await load_events(loader, cities=1)
    where = EventFilter(city=city(prefix, 0))
    table = []
    try:
        async with engine.connect() as conn:
            for depth in DEPTHS:
                key = await loader.fetchrow(
                    "SELECT starts_at, id FROM event WHERE city = $1 ORDER BY starts_at, id OFFSET $2 LIMIT 1",
                    where.city,
                    max(depth - 1, 0),
                )
                after = (key["starts_at"], key["id"]) if depth else None
                keyset = await median_ms(conn, listing_query(where, after, PAGE + 1), repeats)
                offset = await median_ms(conn, listing_query(where, None, PAGE + 1).offset(depth), repeats)
                table.append((depth, keyset, offset))
    finally:
        await engine.dispose()
        await unload_events(loader, prefix)
        await loader.close()
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", help="postgresql://… of a migrated refstack database (default: a private stack)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if args.dsn:
        table = asyncio.run(measure(args.dsn, args.repeats))
    else:
        stack = NativeStack(Layout.create(fixed=False))
        try:
            stack.up(report=lambda _: None)
            table = asyncio.run(measure(stack.primary.direct_url, args.repeats))
        finally:
            stack.down()
    print(f"\nevent list, one city of {EVENTS} events, page of {PAGE}: median of {args.repeats} runs")
    print(f"{'page depth':>10}{'keyset ms':>12}{'offset ms':>12}{'ratio':>8}")
    for depth, keyset, offset in table:
        print(f"{depth:>10}{keyset:>12.2f}{offset:>12.2f}{offset / keyset:>8.1f}")


if __name__ == "__main__":
    main()
