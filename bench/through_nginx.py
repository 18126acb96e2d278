"""What the benchmarks that drive the API through Nginx share: an account with its bearer header, the latency floor
measured in the same run, percentiles, and a command line that runs a load on a private stack of its own.

Why a floor: a number in milliseconds means little on its own on a shared 2-core machine; the same request path
doing no database work (``GET /health/live``), timed in the same run, turns it into a ratio that survives a busy
neighbour. See notes/postgres.md, "Contention", and notes/db_scaling.md, "Read scaling, measured".
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
import urllib.parse
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from stack.native.layout import Layout
from stack.native.stack import NativeStack
from stack.native.web import UNTHROTTLED

PASSWORD = "bench horse battery staple"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def account(client: httpx.AsyncClient, stack: NativeStack, *, organizer: bool = False) -> dict[str, str]:
    email = f"bench-{secrets.token_hex(6)}@example.com"
    created = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    created.raise_for_status()
    if organizer:
        stack.primary.sql(f"update app_user set role = 'organizer' where id = '{created.json()['id']}'", "refstack")
    form = urllib.parse.urlencode({"username": email, "password": PASSWORD})
    token = await client.post(
        "/api/v1/auth/token", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    token.raise_for_status()
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def health_floor(client: httpx.AsyncClient, samples: int = 200) -> list[float]:
    """Latencies of ``GET /health/live`` through the same Nginx and app: the cost of the path itself."""
    floor = []
    for _ in range(samples):
        began = time.perf_counter()
        (await client.get("/health/live")).raise_for_status()
        floor.append(time.perf_counter() - began)
    return floor


def run_on_a_private_stack(
    description: str, load: Callable[[NativeStack, float, int], Coroutine[Any, Any, None]]
) -> None:
    """``--seconds`` and ``--in-flight`` from the command line, then ``load`` on a private, unthrottled stack of
    free ports (beside ``make up`` if one runs), always torn down."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--in-flight", type=int, default=32)
    args = parser.parse_args()
    stack = NativeStack(Layout.create(fixed=False), edge_limits=UNTHROTTLED)
    try:
        stack.up(report=lambda _: None)
        asyncio.run(load(stack, args.seconds, args.in_flight))
    finally:
        stack.down()
