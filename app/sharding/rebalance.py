"""Move the audit log's rows to the shards a new ring names: only the users whose owner changed, copy then delete.

Why this order and what it costs: a copy and a delete on two different databases cannot commit together (there is
no distributed transaction here; two-phase commit would need ``max_prepared_transactions`` and a coordinator that
survives crashes). So each batch is copied to the target and committed first, then exactly the copied rows (by
``(user_id, id)``) are deleted from the source. A crash between the two leaves a row on both shards, never on
none; running ``rebalance`` again finishes the job, because the copy skips rows the target already has
(``ON CONFLICT DO NOTHING``) and placement is decided by where rows *are*, not by what the old ring said.
The protocol around it: first switch writers to the new ring (``ShardedAuditLog.resharding``), so no new row lands
on a source; per-user reads then look at both owners and drop duplicates by id until the move is done
(``settled``). A writer still on the old ring is not lost either: its row is not among the copied ids, stays on
the source and moves on the next run. What is still visible during the move: a fan-out count may see a row twice
for the moment between a batch's two commits. Citus does the same job by moving whole shards (fixed hash ranges)
with logical replication and a short write lock at the switch-over. See notes/db_scaling.md, "Sharding".
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.sharding.audit_log import audit_entry
from app.sharding.ring import HashRing

BATCH_USERS = 200


@dataclass(frozen=True)
class RebalanceReport:
    """Users (keys) and rows seen and moved; ``routes`` counts moved users per ``(source, target)``."""

    users_total: int
    users_moved: int
    rows_total: int
    rows_moved: int
    routes: Mapping[tuple[str, str], int]
    wall_ms: float


async def _users_on(engine: AsyncEngine) -> dict[uuid.UUID, int]:
    """Every user with rows on this shard, and how many (one index-only pass over the primary key)."""
    query = select(audit_entry.c.user_id, func.count()).group_by(audit_entry.c.user_id)
    async with engine.connect() as conn:
        return {user_id: count for user_id, count in (await conn.execute(query)).all()}


async def _move(source: AsyncEngine, target: AsyncEngine, users: list[uuid.UUID]) -> int:
    """Copy these users' rows to ``target`` and commit; then delete from ``source`` exactly the rows copied."""
    async with source.connect() as conn:
        rows = [
            row._asdict() for row in await conn.execute(select(audit_entry).where(audit_entry.c.user_id.in_(users)))
        ]
    if not rows:
        return 0
    async with target.begin() as conn:
        await conn.execute(insert(audit_entry).on_conflict_do_nothing(index_elements=["user_id", "id"]), rows)
    async with source.begin() as conn:
        await conn.execute(
            audit_entry.delete().where(
                audit_entry.c.user_id.in_(users), audit_entry.c.id.in_([row["id"] for row in rows])
            )
        )
    return len(rows)


async def rebalance(engines: Mapping[str, AsyncEngine], ring: HashRing) -> RebalanceReport:
    """Put every user's rows on ``ring.owner(user)``, looking at every shard in ``engines`` (old and new)."""
    began = time.perf_counter()
    routes: dict[tuple[str, str], list[uuid.UUID]] = {}
    users_total = rows_total = 0
    for shard, engine in engines.items():
        held = await _users_on(engine)
        users_total += len(held)
        rows_total += sum(held.values())
        for user_id in held:
            target = ring.owner(str(user_id))
            if target != shard:
                routes.setdefault((shard, target), []).append(user_id)
    rows_moved = 0
    for (source, target), users in routes.items():
        for start in range(0, len(users), BATCH_USERS):
            rows_moved += await _move(engines[source], engines[target], users[start : start + BATCH_USERS])
    moved = Counter({route: len(users) for route, users in routes.items()})
    return RebalanceReport(
        users_total=users_total,
        users_moved=sum(moved.values()),
        rows_total=rows_total,
        rows_moved=rows_moved,
        routes=dict(moved),
        wall_ms=(time.perf_counter() - began) * 1000,
    )
