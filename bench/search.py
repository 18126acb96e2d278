"""Search on 100k events: PostgreSQL full-text search beside ``ILIKE '%word%'``, the endpoint through Nginx, and the
lag from a committed rename to its being found.

Why these three: the GIN indexes are the reason the fallback is first class, and the floor that shows it is the
query people write without them (``ILIKE`` over the same three fields, which must read every row); the endpoint's
latency is what a search box feels, beside ``GET /health/live`` through the same Nginx and app (the path's own
cost); and freshness is the fallback's advantage over any index fed by messages (the generated ``tsvector`` is
recomputed by the UPDATE itself). All on a private stack of free ports with the catalogue of
bench/search_catalogue.py loaded into the app's database. See notes/elasticsearch.md, "Measured".

Run: ``make bench`` or ``.venv/bin/python -m bench.search [--repeats 25] [--requests 300] [--renames 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import urllib.parse
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
from pydantic import PostgresDsn
from sqlalchemy import Executable, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.db.engines import asyncpg_url
from app.db.models import Event
from app.domain.search_query import parse_query
from app.search.page import SearchRequest
from app.search.postgres import search_events
from bench.search_catalogue import EVENTS, load_search_catalogue, performers
from bench.through_nginx import account, health_floor, percentile
from stack.native.layout import Layout
from stack.native.stack import NativeStack
from stack.native.web import UNTHROTTLED

PAGE = 20
WORDS = 5  # performers searched, each timed `repeats` times per query kind


def ilike_statement(word: str) -> Executable:
    """What one writes without a search index: a substring of any of the three fields, newest first."""
    pattern = f"%{word}%"
    return (
        select(Event.id, Event.title, Event.city, Event.venue, Event.starts_at, Event.price_cents)
        .where(or_(Event.title.ilike(pattern), Event.venue.ilike(pattern), Event.city.ilike(pattern)))
        .order_by(Event.title, Event.id)
        .limit(PAGE + 1)
    )


async def timed_ms(run: Callable[[], Awaitable[int]], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        rows = await run()
        times.append((time.perf_counter() - began) * 1000)
        if rows != PAGE + 1:
            raise RuntimeError(f"expected a full page, got {rows} rows")
    return times


async def full_text_against_ilike(dsn: str, repeats: int) -> tuple[list[float], list[float]]:
    """The search use case's own PostgreSQL search, and the ILIKE floor, on one warm connection each."""
    engine = create_async_engine(asyncpg_url(PostgresDsn(dsn)), pool_size=1, max_overflow=0)
    full_text: list[float] = []
    ilike: list[float] = []
    try:
        async with AsyncSession(engine) as session:
            for word in performers()[:WORDS]:
                request = SearchRequest(parse_query(word), fetch=PAGE + 1)
                statement = ilike_statement(word)

                async def searched(request: SearchRequest = request) -> int:
                    return len(await search_events(session, request))

                async def scanned(statement: Executable = statement) -> int:
                    return len((await session.execute(statement)).all())

                full_text += await timed_ms(searched, repeats)
                ilike += await timed_ms(scanned, repeats)
    finally:
        await engine.dispose()
    return full_text, ilike


async def through_nginx(
    stack: NativeStack, requests: int, renames: int
) -> tuple[list[float], list[float], list[tuple[float, int]]]:
    """Endpoint latencies (s), the health floor (s), and rename-to-found lags (s, searches)."""
    async with httpx.AsyncClient(base_url=stack.nginx.url, timeout=10) as client:
        floor = await health_floor(client, samples=requests)
        names = performers()
        latencies = []
        for n in range(requests):
            query = urllib.parse.urlencode({"q": names[n % len(names)], "limit": PAGE})
            began = time.perf_counter()
            answer = await client.get(f"/api/v1/search/events?{query}")
            latencies.append(time.perf_counter() - began)
            answer.raise_for_status()
        organizer = await account(client, stack, organizer=True)
        lags = [await rename_lag(client, organizer, n) for n in range(renames)]
    return latencies, floor, lags


async def rename_lag(client: httpx.AsyncClient, organizer: dict[str, str], n: int) -> tuple[float, int]:
    """Seconds from a rename's 200 to the first search (as its organizer) that finds the new name, and how many
    searches that took."""
    old, new = f"Zyxwold{n}", f"Qwertynew{n}"
    event = {
        "title": old,
        "city": "Zürich",
        "venue": "Tonhalle",
        "starts_at": "2027-06-01T20:00:00+00:00",
        "price_cents": 100,
        "rows": 1,
        "seats_per_row": 1,
    }
    created = (await client.post("/api/v1/events", json=event, headers=organizer)).raise_for_status()
    etag = created.headers["ETag"]
    event_id = created.json()["id"]
    (
        await client.patch(f"/api/v1/events/{event_id}", json={"title": new}, headers={**organizer, "If-Match": etag})
    ).raise_for_status()
    committed = time.perf_counter()
    deadline = committed + 10
    searches = 0
    while time.perf_counter() < deadline:
        found = await client.get("/api/v1/search/events", params={"q": new}, headers=organizer)
        searches += 1
        if any(item["id"] == event_id for item in found.json()["items"]):
            return time.perf_counter() - committed, searches
    raise RuntimeError(f"{new} not found within 10 s")


async def load(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await load_search_catalogue(conn)
    finally:
        await conn.close()


def ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--renames", type=int, default=20)
    args = parser.parse_args()
    stack = NativeStack(Layout.create(fixed=False), edge_limits=UNTHROTTLED)
    try:
        stack.up(report=lambda _: None)
        asyncio.run(load(stack.primary.direct_url))
        full_text, ilike = asyncio.run(full_text_against_ilike(stack.primary.direct_url, args.repeats))
        latencies, floor, lags = asyncio.run(through_nginx(stack, args.requests, args.renames))
    finally:
        stack.down()
    ft50, il50 = statistics.median(full_text), statistics.median(ilike)
    print(f"\nsearch on {EVENTS} events, {WORDS} performers (each in 0.2 % of events), page of {PAGE}")
    print(f"{'statement':<34}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}")
    print(f"{'ILIKE %word% (floor)':<34}{il50:>9.2f}{percentile(ilike, 0.99):>9.2f}{1.0:>8.1f}")
    print(f"{'full text (the search use case)':<34}{ft50:>9.2f}{percentile(full_text, 0.99):>9.2f}{il50 / ft50:>8.1f}x")
    print(f"\nthrough Nginx, {args.requests} sequential requests")
    print(f"{'request':<34}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}")
    print(f"{'GET /health/live (floor)':<34}{ms(floor, 0.5):>9.2f}{ms(floor, 0.99):>9.2f}{1.0:>8.1f}")
    search_ratio = ms(latencies, 0.5) / ms(floor, 0.5)
    print(f"{'GET /api/v1/search/events':<34}{ms(latencies, 0.5):>9.2f}{ms(latencies, 0.99):>9.2f}{search_ratio:>8.1f}")
    print(f"\nrename committed -> found by search ({args.renames} renames, PostgreSQL answering)")
    seconds = [lag for lag, _ in lags]
    print(f"{'lag p50 ms':>12}{'lag max ms':>12}{'searches, max':>15}")
    print(f"{ms(seconds, 0.5):>12.2f}{max(seconds) * 1000:>12.2f}{max(n for _, n in lags):>15}")


if __name__ == "__main__":
    main()
