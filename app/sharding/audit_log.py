"""The audit log, sharded by user id over several PostgreSQL primaries: one shard per user, fan-out for the rest.

Why the audit log and not notifications: it is the ticketing table that grows fastest (every login, hold, booking
and refused payment appends a row) while the rest of the data stays small, it is append-only and never joined to
the other tables (no foreign key has to cross a database), and almost every read is "one user's history" (the user's
activity page, a support agent looking at one account), which the shard key keeps on one shard. The reads that are
not per user (latest entries, counts per action) are analytics that can afford a fan-out. Notifications fit the
same shape, but they are updated (read/unread), which makes a move between shards harder to explain.

The shape that sharding imposes, and that Citus imposes too: the primary key is ``(user_id, id)`` because a shard
can only enforce uniqueness over its own rows, so every unique key must contain the shard key; ids are UUIDs made
here, because a sequence is per database and two shards would hand out the same number; ``at`` is stamped here, by
one clock, so that "latest across shards" compares like with like.

The table has its own ``MetaData`` and is created on each shard with ``create_all`` rather than with the primary's
Alembic history: it does not live on the primary at all, and Alembic tracks one database per run, so N shards would
need N runs each with its own version row (doable with a loop in ``env.py``, and the way to go once this table
changes shape). Citus removes the question: DDL on the coordinator is propagated to every shard.
Engines are built by the caller and passed in. See notes/db_scaling.md, "Sharding".
"""

from __future__ import annotations

import heapq
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, MetaData, Row, Table, Text, func, select
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.base import NAMING_CONVENTION
from app.sharding.fan_out import Costed, fan_out
from app.sharding.ring import HashRing

metadata = MetaData(naming_convention=NAMING_CONVENTION)

audit_entry = Table(
    "audit_entry",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("action", Text, nullable=False),
    Column("detail", JSONB, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_audit_entry_user_id_at", "user_id", "at"),
    Index("ix_audit_entry_at_id", "at", "id"),
)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AuditEntry:
    """One thing a user did (``action`` such as ``booking.paid``), when, and its details."""

    user_id: uuid.UUID
    action: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    at: datetime = field(default_factory=_now)

    @classmethod
    def of(cls, row: Row[Any]) -> AuditEntry:
        return cls(user_id=row.user_id, action=row.action, detail=row.detail, id=row.id, at=row.at)

    def values(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "id": self.id,
            "action": self.action,
            "detail": dict(self.detail),
            "at": self.at,
        }


def newest_first(entry: AuditEntry) -> tuple[datetime, uuid.UUID]:
    """The sort key of every listing, ``ORDER BY at DESC, id DESC`` (reversed by the callers)."""
    return entry.at, entry.id


async def create_schema(engines: Iterable[AsyncEngine]) -> None:
    """Create the table on every shard (idempotent: existing tables are left alone)."""
    for engine in engines:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)


class ShardedAuditLog:
    """Routes each user's entries to the shard the ring names; ``previous`` is set only while resharding."""

    def __init__(self, engines: Mapping[str, AsyncEngine], ring: HashRing, previous: HashRing | None = None) -> None:
        unknown = (ring.nodes | (previous.nodes if previous else frozenset())) - set(engines)
        if unknown:
            raise ValueError(f"no engine for shards {sorted(unknown)}")
        self.engines = engines
        self.ring = ring
        self.previous = previous

    def owner(self, user_id: uuid.UUID) -> str:
        return self.ring.owner(str(user_id))

    def read_shards(self, user_id: uuid.UUID) -> list[str]:
        """The owner; while resharding also the old owner, because the user's older rows may not have moved yet."""
        shards = [self.owner(user_id)]
        if self.previous is not None and (old := self.previous.owner(str(user_id))) != shards[0]:
            shards.append(old)
        return shards

    def resharding(self, ring: HashRing) -> ShardedAuditLog:
        """Writes follow ``ring`` from now on; per-user reads look at both owners until ``settled``."""
        return ShardedAuditLog(self.engines, ring, previous=self.ring)

    def settled(self) -> ShardedAuditLog:
        return ShardedAuditLog(self.engines, self.ring)

    # -- writes: the owner shard only ----------------------------------------------------------------------
    async def write(self, entry: AuditEntry) -> AuditEntry:
        async with self.engines[self.owner(entry.user_id)].begin() as conn:
            await conn.execute(audit_entry.insert().values(entry.values()))
        return entry

    async def write_many(self, entries: Sequence[AuditEntry]) -> dict[str, int]:
        """Group the batch by owner and insert each group on its shard in one round trip; rows per shard."""
        by_shard: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            by_shard.setdefault(self.owner(entry.user_id), []).append(entry.values())
        for shard, rows in by_shard.items():
            async with self.engines[shard].begin() as conn:
                await conn.execute(audit_entry.insert(), rows)
        return {shard: len(rows) for shard, rows in by_shard.items()}

    # -- reads ---------------------------------------------------------------------------------------------
    async def for_user(self, user_id: uuid.UUID, limit: int = 50) -> Costed[list[AuditEntry]]:
        """One user's newest entries: one shard (two while that user's rows are being moved)."""
        query = (
            select(audit_entry)
            .where(audit_entry.c.user_id == user_id)
            .order_by(audit_entry.c.at.desc(), audit_entry.c.id.desc())
            .limit(limit)
        )
        result = await fan_out(self.engines, self.read_shards(user_id), query)
        unique = {row.id: AuditEntry.of(row) for rows in result.value.values() for row in rows}
        return Costed(sorted(unique.values(), key=newest_first, reverse=True)[:limit], result.cost)

    async def latest(self, limit: int = 20) -> Costed[list[AuditEntry]]:
        """The newest entries of all users: every shard sends its own top ``limit``, merged here (a top-N merge,
        so the cost is shards × limit rows shipped for ``limit`` returned)."""
        query = select(audit_entry).order_by(audit_entry.c.at.desc(), audit_entry.c.id.desc()).limit(limit)
        result = await fan_out(self.engines, sorted(self.ring.nodes), query)
        per_shard = [[AuditEntry.of(row) for row in rows] for rows in result.value.values()]
        merged = heapq.merge(*per_shard, key=newest_first, reverse=True)
        return Costed([entry for _, entry in zip(range(limit), merged, strict=False)], result.cost)

    async def count_by_action(self) -> Costed[dict[str, int]]:
        """Entries per action over all users: each shard aggregates its own rows and ships one row per action,
        and the partial counts are summed here (the aggregate is pushed down, the rows never leave the shards)."""
        query = select(audit_entry.c.action, func.count().label("entries")).group_by(audit_entry.c.action)
        result = await fan_out(self.engines, sorted(self.ring.nodes), query)
        totals: Counter[str] = Counter()
        for rows in result.value.values():
            for row in rows:
                totals[row.action] += row.entries
        return Costed(dict(totals), result.cost)
