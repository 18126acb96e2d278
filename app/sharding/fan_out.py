"""Run one statement on several shards at once and say what it cost: which shards, how many rows, how long.

Why the cost is part of the answer: on one database "latest 20 entries" reads 20 rows; over N shards it asks each
shard for its own 20 and throws away (N-1)·20 of them, and the caller waits for the *slowest* shard, so the tail
latency of a fan-out is the worst of N. Making every sharded read return a ``QueryCost`` keeps that visible in
tests and in ``python -m bench.sharding``. See notes/db_scaling.md, "Sharding".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Executable, Row
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")


@dataclass(frozen=True)
class QueryCost:
    """``shard_ms``: each shard's own time, by name; ``rows_shipped``: rows that crossed from shards to us."""

    shard_ms: Mapping[str, float]
    rows_shipped: int
    wall_ms: float

    @property
    def shards_touched(self) -> int:
        return len(self.shard_ms)

    @property
    def slowest_shard_ms(self) -> float:
        return max(self.shard_ms.values(), default=0.0)


@dataclass(frozen=True)
class Costed(Generic[T]):
    value: T
    cost: QueryCost


async def _timed_rows(engine: AsyncEngine, statement: Executable) -> tuple[list[Row[Any]], float]:
    began = time.perf_counter()
    async with engine.connect() as conn:
        rows = list((await conn.execute(statement)).all())
    return rows, (time.perf_counter() - began) * 1000


async def fan_out(
    engines: Mapping[str, AsyncEngine], shards: Sequence[str], statement: Executable
) -> Costed[dict[str, list[Row[Any]]]]:
    """``statement`` on every shard in ``shards`` concurrently; rows by shard name, with the cost."""
    began = time.perf_counter()
    results = await asyncio.gather(*(_timed_rows(engines[shard], statement) for shard in shards))
    wall_ms = (time.perf_counter() - began) * 1000
    rows = {shard: shard_rows for shard, (shard_rows, _) in zip(shards, results, strict=True)}
    cost = QueryCost(
        shard_ms={shard: ms for shard, (_, ms) in zip(shards, results, strict=True)},
        rows_shipped=sum(len(shard_rows) for shard_rows in rows.values()),
        wall_ms=wall_ms,
    )
    return Costed(rows, cost)
