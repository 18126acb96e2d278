"""The sharded audit log on real private primaries: placement, single-shard reads, fan-out cost, resharding.

Two shard primaries (``stack.native.shards.ShardSet``, started for this module, not by the main stack) hold the
audit log by user id. Placement is checked by asking each shard directly, as superuser over its unix socket, never
through the code under test; the shards a read touches are counted with a statement hook on each engine. Then a
third primary joins, the log is rebalanced, and every row must be present exactly once, on its new owner, with
about a third of the users moved. See notes/db_scaling.md, "Sharding".
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import PostgresDsn
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engines import build_engine
from app.settings import Settings
from app.sharding.audit_log import AuditEntry, ShardedAuditLog, create_schema, newest_first
from app.sharding.rebalance import rebalance
from app.sharding.ring import HashRing, moves
from stack.native.shards import ShardSet, reap_orphaned_shards
from tests.statement_log import recorded_statements

ACTIONS = ("login", "hold.placed", "booking.paid", "booking.declined", "refresh.reused")
EPOCH = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def shard_set() -> Iterator[ShardSet]:
    reap_orphaned_shards()
    with ShardSet() as shards:
        shards.add(2)
        yield shards


def engines_for(shards: ShardSet) -> dict[str, AsyncEngine]:
    settings = Settings()
    return {name: build_engine(PostgresDsn(url), settings) for name, url in shards.urls().items()}


@pytest.fixture
async def engines(shard_set: ShardSet) -> AsyncIterator[dict[str, AsyncEngine]]:
    """An engine per shard, on an empty table (each test writes its own users)."""
    built = engines_for(shard_set)
    await create_schema(built.values())
    for shard in shard_set.shards.values():
        shard.sql("TRUNCATE audit_entry", database="refstack")
    yield built
    for engine in built.values():
        await engine.dispose()


def history(users: int, per_user: int, seed: int) -> list[AuditEntry]:
    """``per_user`` entries for each of ``users`` new users, at distinct, shuffled times."""
    rng = random.Random(seed)
    user_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(users)]
    entries = [
        AuditEntry(user_id, rng.choice(ACTIONS), {"n": n}, at=EPOCH + timedelta(milliseconds=rng.randrange(10**9)))
        for user_id in user_ids
        for n in range(per_user)
    ]
    rng.shuffle(entries)
    return entries


def placement(shards: ShardSet) -> dict[uuid.UUID, list[str]]:
    """Entry id → the shards that hold it, read from each shard directly (superuser, unix socket)."""
    where: dict[uuid.UUID, list[str]] = {}
    for name, shard in shards.shards.items():
        for line in shard.sql("SELECT id FROM audit_entry", database="refstack").splitlines():
            where.setdefault(uuid.UUID(line), []).append(name)
    return where


def users_by_shard(shards: ShardSet) -> dict[str, set[uuid.UUID]]:
    return {
        name: {uuid.UUID(line) for line in shard.sql("SELECT DISTINCT user_id FROM audit_entry", "refstack").split()}
        for name, shard in shards.shards.items()
    }


async def test_entries_of_a_user_land_on_exactly_its_owner_shard(
    shard_set: ShardSet, engines: dict[str, AsyncEngine]
) -> None:
    ring = HashRing(engines)
    log = ShardedAuditLog(engines, ring)
    entries = history(users=200, per_user=3, seed=1)
    await log.write_many(entries[:-1])
    await log.write(entries[-1])

    where = placement(shard_set)
    assert len(where) == len(entries)
    for entry in entries:
        assert where[entry.id] == [ring.owner(str(entry.user_id))]
    held = users_by_shard(shard_set)
    assert held["shard_0"].isdisjoint(held["shard_1"])
    assert min(len(users) for users in held.values()) > 50  # both shards carry a fair part


async def test_one_users_history_is_read_from_one_shard(engines: dict[str, AsyncEngine]) -> None:
    log = ShardedAuditLog(engines, HashRing(engines))
    entries = history(users=50, per_user=5, seed=2)
    await log.write_many(entries)
    user_id = entries[0].user_id
    owner = log.owner(user_id)

    with recorded_statements(engines["shard_0"]) as on_0, recorded_statements(engines["shard_1"]) as on_1:
        result = await log.for_user(user_id)
    statements = {"shard_0": on_0, "shard_1": on_1}

    assert [entry.id for entry in result.value] == [
        entry.id for entry in sorted((e for e in entries if e.user_id == user_id), key=newest_first, reverse=True)
    ]
    assert result.cost.shards_touched == 1
    assert len(statements[owner]) == 1
    assert all(statements[shard] == [] for shard in statements if shard != owner)


async def test_cross_shard_queries_touch_every_shard_and_merge_right(engines: dict[str, AsyncEngine]) -> None:
    log = ShardedAuditLog(engines, HashRing(engines))
    entries = history(users=100, per_user=4, seed=3)
    await log.write_many(entries)

    latest = await log.latest(20)
    assert [entry.id for entry in latest.value] == [
        entry.id for entry in sorted(entries, key=newest_first, reverse=True)[:20]
    ]
    assert latest.cost.shards_touched == 2
    assert latest.cost.rows_shipped == 40  # each shard sends its own top 20, half of them are thrown away

    counts = await log.count_by_action()
    assert counts.value == Counter(entry.action for entry in entries)
    assert counts.cost.shards_touched == 2
    assert counts.cost.rows_shipped <= 2 * len(ACTIONS)  # partial counts travel, the 400 rows do not


async def test_a_move_interrupted_between_copy_and_delete_is_finished_by_running_again(
    shard_set: ShardSet, engines: dict[str, AsyncEngine]
) -> None:
    """The crash window: rows already copied to the owner are still on the other shard. No row is lost, and a
    second ``rebalance`` leaves each row once, on its owner."""
    ring = HashRing(engines)
    log = ShardedAuditLog(engines, ring)
    entries = history(users=20, per_user=3, seed=5)
    await log.write_many(entries)
    user_id = entries[0].user_id
    owner = log.owner(user_id)
    other = next(name for name in sorted(engines) if name != owner)
    leftovers = [entry for entry in entries if entry.user_id == user_id]
    await ShardedAuditLog(engines, HashRing([other])).write_many(leftovers)  # the copy's source, not yet deleted
    assert all(len(placement(shard_set)[entry.id]) == 2 for entry in leftovers)

    report = await rebalance(engines, ring)

    assert report.users_moved == 1
    assert report.routes == {(other, owner): 1}
    where = placement(shard_set)
    assert all(where[entry.id] == [owner] for entry in leftovers)
    assert len(where) == len(entries)


@pytest.mark.slow
async def test_a_third_shard_takes_about_a_third_of_the_users_and_every_row_stays_once(
    shard_set: ShardSet, engines: dict[str, AsyncEngine]
) -> None:
    before = HashRing(engines)
    log = ShardedAuditLog(engines, before)
    entries = history(users=600, per_user=2, seed=4)
    await log.write_many(entries)

    (third,) = shard_set.add()
    new_engines: Mapping[str, AsyncEngine] = {**engines, **engines_for(shard_set)}
    extra = new_engines[third.name]
    try:
        await create_schema([extra])
        after = before.with_node(third.name)
        expected = {uuid.UUID(move.key) for move in moves({str(e.user_id) for e in entries}, before, after)}

        moving = ShardedAuditLog(new_engines, after, previous=before)
        mover = next(iter(expected))
        mid_move = await moving.for_user(mover)  # its rows are still all on the old owner
        assert len(mid_move.value) == 2
        assert mid_move.cost.shards_touched == 2

        report = await rebalance(new_engines, after)

        assert report.users_total == 600
        assert report.rows_total == len(entries)
        assert report.users_moved == len(expected)
        assert 0.2 < report.users_moved / report.users_total < 0.47
        assert set(report.routes) <= {("shard_0", third.name), ("shard_1", third.name)}
        where = placement(shard_set)
        assert len(where) == len(entries)
        for entry in entries:
            assert where[entry.id] == [after.owner(str(entry.user_id))]
        assert users_by_shard(shard_set)[third.name] == expected

        settled = moving.settled()
        assert len((await settled.for_user(mover)).value) == 2
        assert (await settled.count_by_action()).value == Counter(entry.action for entry in entries)
        assert (await rebalance(new_engines, after)).users_moved == 0  # a second run finds nothing to do
    finally:
        await extra.dispose()
