"""``GET /api/v1/events/{id}`` through Nginx: a hit in the edge's micro-cache, the same read past it (the app's own
cached hit), a cached 304 and a miss, and a list page anonymous (cached) and signed in (not), beside the floor of
the same path.

Why these rows: the cache exists to make the hot read cheap, and a number in req/s means little alone on a shared
2-core machine. The floor is ``GET /health/live`` through the same Nginx and app under the same load (no database,
no Redis), so each row's ratio to it says what the read costs beyond the path itself. An anonymous read of one event
is answered by Nginx's micro-cache for about a second (notes/nginx.md, "The micro-cache"): the "edge cache" rows are
that; the "app only" rows send ``Cookie: refstack-bench=app-only``, which the edge passes to the app uncached (any
cookie or ``Authorization`` does) and the app ignores, so they are the app's own cached read as before. The miss row
reads ids nobody read before (the lock, the query and the store, every time). The list rows read one city's first
page of 20: anonymous (a shared page, 1 s) and signed in (never cached: the router and the query every time). The
stampede row fires 200 concurrent reads of an event nobody has read, past the edge (the app's own guard); its loads
are the router's own count (``db_reads_routed_total``, every worker), which moves once per database read; the same
burst through the edge counts the requests the app served (``http_requests_total`` of the route): the edge's
``proxy_cache_lock``. The invalidation row patches an event through one worker and reads it through the other on the
app's own port until the new title comes back (bench/worker_connections.py pins a connection to each): how long the
other worker's memory hid the write. With ``REFSTACK_LOCAL_CACHE_MAX_ENTRIES=0`` in the environment the app runs
without the first level, for a before/after comparison. See notes/redis.md, "Cache-aside" and "Two levels: a
worker's memory in front of Redis".

First, the target of the read path (notes/fastapi.md, "What a request costs"): the edge cache's hit and 304, the
app's own hit and ``/health/live`` driven by ``wrk -t2 -c64`` through Nginx, beside a bare FastAPI app answering the
same JSON behind an Nginx from the same template (bench/bare_floor.py; read with the same cookie, so its Nginx does
not cache it either), in alternating rounds; the medians and their ratios to the bare floor. The goal is at least
0.8x its throughput with a p99 at most 2x its own.

Run: ``make bench`` or ``.venv/bin/python -m bench.cache [--seconds 5 --in-flight 32]``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.bare_floor import WrkRun, bare_floor, wrk, wrk_installed
from bench.catalogue import city, load_events
from bench.through_nginx import account, percentile, run_on_a_private_stack
from bench.worker_connections import two_workers
from stack.native.stack import NativeStack

MISS_EVENTS = 20_000
STAMPEDE = 200
FLOOR_ROUNDS = 3
THROUGHPUT_GOAL, P99_GOAL = 0.8, 2.0
PATCHES = 50
SEEN_WITHIN_S = 5.0

Request = tuple[str, dict[str, str]]
PAST_THE_EDGE = {"Cookie": "refstack-bench=app-only"}  # the micro-cache passes it by; the app ignores it
ROUTE = "/events/{event_id}"  # the template under the API router, as the app labels it


@dataclass(frozen=True)
class Phase:
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


async def load(client: httpx.AsyncClient, requests: Iterator[Request], seconds: float, in_flight: int) -> Phase:
    """``in_flight`` clients sending the next request from ``requests`` for ``seconds``; each must answer 200/304."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def client_loop() -> None:
        while time.monotonic() < deadline:
            path, headers = next(requests)
            began = time.perf_counter()
            answer = await client.get(path, headers=headers)
            if answer.status_code not in (200, 304):
                answer.raise_for_status()
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(in_flight)))
    return Phase(len(latencies), time.perf_counter() - began, latencies)


def repeat(request: Request) -> Iterator[Request]:
    while True:
        yield request


async def database_reads(client: httpx.AsyncClient, metrics_url: str) -> float:
    text = (await client.get(metrics_url)).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "db_reads_routed_total"
    )


async def event_reads_served(client: httpx.AsyncClient, metrics_url: str) -> float:
    """``GET /api/v1/events/{event_id}`` the app answered, every worker."""
    text = (await client.get(metrics_url)).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_requests_total" and sample.labels.get("route") == ROUTE
    )


async def run(stack: NativeStack, seconds: float, in_flight: int) -> None:
    conn = await asyncpg.connect(stack.primary.direct_url)
    try:
        prefix = await load_events(conn, events=MISS_EVENTS, cities=1)
        ids = [str(row[0]) for row in await conn.fetch("SELECT id FROM event WHERE city LIKE $1", prefix + "%")]
    finally:
        await conn.close()
    hot, cold = ids[0], iter(ids[1:])
    path = f"/api/v1/events/{hot}"
    page = f"/api/v1/events?city={city(prefix, 0)}&limit=20"
    limits = httpx.Limits(max_connections=in_flight + 4, max_keepalive_connections=in_flight + 4)
    async with httpx.AsyncClient(base_url=stack.nginx.url, timeout=30, limits=limits) as client:
        etag = (await client.get(path)).headers["etag"]
        if wrk_installed():
            beside_the_bare_floor(stack, path, etag, seconds)
        else:
            print("wrk is not installed (apt-get install -y wrk): the comparison with the bare floor is skipped")
        signed_in = await account(client, stack)
        await load(client, repeat(("/health/live", {})), 1.0, in_flight)  # warm pools and connections
        phases: list[tuple[str, Phase]] = [
            ("floor /health/live", await load(client, repeat(("/health/live", {})), seconds, in_flight)),
            ("edge cache hit", await load(client, repeat((path, {})), seconds, in_flight)),
            ("edge cache 304", await load(client, repeat((path, {"If-None-Match": etag})), seconds, in_flight)),
            ("app only: cached hit", await load(client, repeat((path, PAST_THE_EDGE)), seconds, in_flight)),
            ("miss (new id each)", await load(client, ((f"/api/v1/events/{i}", {}) for i in cold), seconds, in_flight)),
            ("list page, anonymous", await load(client, repeat((page, {})), seconds, in_flight)),
            ("list page, signed in", await load(client, repeat((page, signed_in)), seconds, in_flight)),
        ]
        organizer = await account(client, stack, organizer=True)
        created = await client.post("/api/v1/events", headers=organizer, json=EVENT)
        created.raise_for_status()
    delays = await asyncio.to_thread(invalidation_delays, stack, f"/api/v1/events/{created.json()['id']}", organizer)
    stampede_limits = httpx.Limits(max_connections=STAMPEDE, max_keepalive_connections=STAMPEDE)
    async with httpx.AsyncClient(base_url=stack.nginx.url, timeout=30, limits=stampede_limits) as client:
        loads, statuses, control = await stampede(client, stack, f"/api/v1/events/{next(cold)}")
        fills, edge_statuses = await edge_stampede(client, stack, f"/api/v1/events/{next(cold)}")

    floor = phases[0][1]
    floor_p99 = percentile(floor.latencies, 0.99)
    print(f"\nGET /api/v1/events/{{id}} through Nginx, {in_flight} in flight, {seconds:.0f} s per row")
    print(f"{'row':<24}{'req/s':>8}{'x floor':>9}{'p50 ms':>9}{'p99 ms':>9}{'p99 x floor':>13}")
    for name, phase in phases:
        p50, p99 = percentile(phase.latencies, 0.5), percentile(phase.latencies, 0.99)
        print(
            f"{name:<24}{phase.rate:>8.0f}{phase.rate / floor.rate:>9.2f}{p50 * 1000:>9.1f}{p99 * 1000:>9.1f}"
            f"{p99 / floor_p99:>13.2f}"
        )
    print(
        f"stampede past the edge: {STAMPEDE} concurrent misses on one key -> {loads:.0f} database read(s);"
        f" statuses {dict(statuses)}"
    )
    print(
        f"stampede through the edge cache: {STAMPEDE} concurrent misses on one key -> {fills:.0f} request(s) the app"
        f" served; statuses {dict(edge_statuses)}"
    )
    print(f"the same burst on /health/live (the edge alone): statuses {dict(control)}")
    p50, p99 = percentile(delays, 0.5) * 1000, percentile(delays, 0.99) * 1000
    print(
        f"patch through one worker, read through the other until it shows: {PATCHES} patches,"
        f" p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(delays) * 1000:.1f} ms"
    )


EVENT = {
    "title": "Invalidation bench",
    "city": "Benchtown",
    "venue": "Hall A",
    "starts_at": "2027-06-01T20:00:00+00:00",
    "price_cents": 4500,
    "rows": 1,
    "seats_per_row": 1,
}


def invalidation_delays(stack: NativeStack, path: str, organizer: dict[str, str]) -> list[float]:
    """``PATCHES`` times: the reader's worker reads the event (and holds it), the writer's worker patches it, then the
    reader's worker is read until it answers the new title. Each delay runs from the patch's answer to the start of
    the first read that showed it (about 0 when the first read after the patch already did)."""
    delays: list[float] = []
    with two_workers(stack.app.url) as (writer, reader):
        for n in range(PATCHES):
            reader.request("GET", path)
            etag = writer.request("GET", path, headers=organizer)[1]["etag"]
            status, _, body = writer.request(
                "PATCH", path, headers={**organizer, "If-Match": etag}, body={"title": f"Take {n}"}
            )
            if status != 200:
                raise RuntimeError(f"patch {n}: {status} {body}")
            answered = time.perf_counter()
            while True:
                began = time.perf_counter()
                if reader.request("GET", path)[2]["title"] == f"Take {n}":
                    break
                if began - answered > SEEN_WITHIN_S:
                    raise RuntimeError(f"patch {n} not seen by the other worker within {SEEN_WITHIN_S} s")
            delays.append(began - answered)
    return delays


def median_run(runs: list[WrkRun]) -> WrkRun:
    rates, p50s, p99s = (sorted(values) for values in zip(*((r.rate, r.p50_s, r.p99_s) for r in runs), strict=True))
    middle = len(runs) // 2
    return WrkRun(rates[middle], p50s[middle], p99s[middle])


def beside_the_bare_floor(stack: NativeStack, path: str, etag: str, seconds: float) -> None:
    """``FLOOR_ROUNDS`` alternating rounds of wrk on the bare floor and on refstack's rows; medians and ratios."""
    with bare_floor() as floor_url:
        rows: dict[str, tuple[str, dict[str, str]]] = {
            "bare FastAPI floor": (f"{floor_url}{path}", PAST_THE_EDGE),
            "edge cache hit": (f"{stack.nginx.url}{path}", {}),
            "edge cache 304": (f"{stack.nginx.url}{path}", {"If-None-Match": etag}),
            "app only: cached hit": (f"{stack.nginx.url}{path}", PAST_THE_EDGE),
            "/health/live": (f"{stack.nginx.url}/health/live", {}),
        }
        for url, headers in rows.values():  # warm both apps' workers and Nginx's upstream connections
            wrk(url, seconds=1, headers=headers)
        runs: dict[str, list[WrkRun]] = {name: [] for name in rows}
        for _ in range(FLOOR_ROUNDS):
            for name, (url, headers) in rows.items():
                runs[name].append(wrk(url, seconds=seconds, headers=headers))
    medians = {name: median_run(each) for name, each in runs.items()}
    floor = medians["bare FastAPI floor"]
    print(f"\nwrk -t2 -c64 through Nginx, {FLOOR_ROUNDS} alternating rounds of {seconds:.0f} s, medians")
    print(f"{'row':<24}{'req/s':>8}{'x floor':>9}{'p50 ms':>9}{'p99 ms':>9}{'p99 x floor':>13}")
    for name, run in medians.items():
        print(
            f"{name:<24}{run.rate:>8.0f}{run.rate / floor.rate:>9.2f}{run.p50_s * 1000:>9.1f}{run.p99_s * 1000:>9.1f}"
            f"{run.p99_s / floor.p99_s:>13.2f}"
        )
    for name in ("edge cache hit", "app only: cached hit"):
        hit = medians[name]
        met = hit.rate >= THROUGHPUT_GOAL * floor.rate and hit.p99_s <= P99_GOAL * floor.p99_s
        print(
            f"goal for the {name}: >= {THROUGHPUT_GOAL}x the floor's req/s and p99 <= {P99_GOAL}x its p99:"
            f" {'met' if met else 'not met'}"
        )


async def burst(client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None) -> Counter[int]:
    """``STAMPEDE`` concurrent GETs of ``path``: how many answered with each status."""
    answers = await asyncio.gather(*(client.get(path, headers=headers) for _ in range(STAMPEDE)))
    return Counter(answer.status_code for answer in answers)


async def stampede(
    client: httpx.AsyncClient, stack: NativeStack, path: str
) -> tuple[float, Counter[int], Counter[int]]:
    """Fire ``STAMPEDE`` reads at once of an event nobody has read (in no worker's memory, not in Redis): the
    database reads the workers made, the statuses, and the statuses of the same burst on ``/health/live`` (what the
    edge itself does with 200 new connections)."""
    metrics_url = f"{stack.app.url}/metrics"
    control = await burst(client, "/health/live")
    before = await database_reads(client, metrics_url)
    statuses = await burst(client, path, PAST_THE_EDGE)
    return await database_reads(client, metrics_url) - before, statuses, control


async def edge_stampede(client: httpx.AsyncClient, stack: NativeStack, path: str) -> tuple[float, Counter[int]]:
    """The same burst through the micro-cache: how many of the 200 reached the app (``proxy_cache_lock`` lets one
    fill through; the others wait for it, up to 5 s)."""
    metrics_url = f"{stack.app.url}/metrics"
    before = await event_reads_served(client, metrics_url)
    statuses = await burst(client, path)
    return await event_reads_served(client, metrics_url) - before, statuses


def main() -> None:
    run_on_a_private_stack(__doc__ or "", run)


if __name__ == "__main__":
    main()
