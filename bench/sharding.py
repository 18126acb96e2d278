"""The sharded audit log on private shard primaries: what one user's read, a fan-out and a resharding cost.

Starts two shard primaries (``stack.native.shards.ShardSet``), writes ``--users`` users' histories, then prints the
cost of a single-user read (one shard), of "latest 20 across all users" (every shard ships its own 20) and of
"entries per action" (every shard ships partial counts), adds a third primary, rebalances, and prints how many
users and rows moved next to what ``hash % N`` would have moved. Bounded: a fixed number of rows and repeats.
See notes/db_scaling.md, "Sharding".

Run: ``.venv/bin/python -m bench.sharding [--users 2000] [--per-user 10] [--repeats 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import PostgresDsn
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engines import build_engine
from app.settings import Settings
from app.sharding.audit_log import AuditEntry, ShardedAuditLog, create_schema
from app.sharding.fan_out import Costed
from app.sharding.rebalance import rebalance
from app.sharding.ring import HashRing, stable_hash
from stack.native.shards import ShardSet

ACTIONS = ("login", "hold.placed", "booking.paid", "booking.declined", "refresh.reused")
WRITE_BATCH = 2000


def engines_for(shards: ShardSet) -> dict[str, AsyncEngine]:
    settings = Settings()
    return {name: build_engine(PostgresDsn(url), settings) for name, url in shards.urls().items()}


async def measure(label: str, query: Callable[[], Awaitable[Costed[Any]]], repeats: int) -> tuple[str, ...]:
    costs = [(await query()).cost for _ in range(repeats)]
    return (
        label,
        str(costs[-1].shards_touched),
        str(costs[-1].rows_shipped),
        f"{statistics.median(c.wall_ms for c in costs):.2f}",
        f"{statistics.median(c.slowest_shard_ms for c in costs):.2f}",
    )


async def run(shards: ShardSet, users: int, per_user: int, repeats: int) -> None:
    rng = random.Random(42)
    user_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(users)]
    engines = engines_for(shards)
    try:
        await create_schema(engines.values())
        log = ShardedAuditLog(engines, HashRing(engines))
        epoch = datetime.now(UTC)
        entries = [
            AuditEntry(user_id, rng.choice(ACTIONS), {"n": n}, at=epoch - timedelta(seconds=rng.randrange(86_400)))
            for user_id in user_ids
            for n in range(per_user)
        ]
        for start in range(0, len(entries), WRITE_BATCH):
            await log.write_many(entries[start : start + WRITE_BATCH])

        probe = user_ids[0]
        rows = [
            await measure("one user's history (50)", lambda: log.for_user(probe), repeats),
            await measure("latest 20, all users", lambda: log.latest(20), repeats),
            await measure("entries per action", log.count_by_action, repeats),
        ]
        print(f"\naudit log: {len(entries)} rows of {users} users on 2 shards; median of {repeats} runs")
        print(f"{'query':<26}{'shards':>8}{'rows shipped':>14}{'wall ms':>10}{'slowest ms':>12}")
        for label, touched, shipped, wall, slowest in rows:
            print(f"{label:<26}{touched:>8}{shipped:>14}{wall:>10}{slowest:>12}")

        (third,) = shards.add()
        engines |= engines_for(shards)
        await create_schema([engines[third.name]])
        report = await rebalance(engines, log.ring.with_node(third.name))
        modulo = sum(1 for user_id in user_ids if stable_hash(str(user_id)) % 2 != stable_hash(str(user_id)) % 3)
        print(f"\nadding {third.name}: rebalanced in {report.wall_ms:.0f} ms")
        print(f"  users moved  {report.users_moved:>6} of {report.users_total} ({report.users_moved / users:.1%})")
        print(f"  rows moved   {report.rows_moved:>6} of {report.rows_total} ({report.rows_moved / len(entries):.1%})")
        print(f"  hash % N would have moved {modulo} users ({modulo / users:.1%})")
        for (source, target), moved in sorted(report.routes.items()):
            print(f"  {source} -> {target}: {moved} users")
    finally:
        for engine in engines.values():
            await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--per-user", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with ShardSet() as shards:
        shards.add(2)
        asyncio.run(run(shards, args.users, args.per_user, args.repeats))


if __name__ == "__main__":
    main()
