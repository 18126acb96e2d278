"""PostgreSQL's housekeeping made visible: row versions, bloat and VACUUM, HOT updates, freezing, online DDL.

Why these tests: MVCC never overwrites a row, so every UPDATE leaves a dead version behind, and the price of that
design (bloat, VACUUM and its locks, autovacuum's thresholds, transaction-id wraparound) is paid in production by
whoever did not see it coming. Each test shows one mechanism on the session stack's primary, in one private
database (``housekeeping_<hex>``, with ``pgstattuple`` and ``pg_visibility``), on tables small enough that the
module runs in seconds. Autovacuum is off on every table here (``autovacuum_enabled = false``) so that its launcher
cannot change a count between two lines. One trap is part of the lesson: the stack's replica runs with
``hot_standby_feedback``, so its replication slot holds back the primary's VACUUM horizon until the replica next
reports; ``release_standby_horizon`` makes it report. See notes/postgres.md, "Housekeeping".
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from stack.native.postgres import SLOT
from stack.native.stack import NativeStack
from tests.plan_nodes import nodes
from tests.polling import wait_for_async
from tests.private_database import private_database

SHORT_LOCK_TIMEOUT = "200ms"
LOCK_TIMEOUT_S = 0.2


@dataclass(frozen=True)
class Housekeeping:
    stack: NativeStack
    dsn: str


@pytest.fixture(scope="module")
def housekeeping(stack: NativeStack) -> Iterator[Housekeeping]:
    with private_database(stack, "housekeeping") as dsn:
        name = dsn.rsplit("/", 1)[1]
        for extension in ("pgstattuple", "pg_visibility"):  # contrib; CREATE EXTENSION needs the superuser
            stack.primary.sql(f"CREATE EXTENSION {extension}", database=name)
        yield Housekeeping(stack, dsn)


@pytest.fixture
async def conn(housekeeping: Housekeeping) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(housekeeping.dsn)
    try:
        yield connection
    finally:
        await connection.close()


async def committed_xid(conn: asyncpg.Connection, *statements: str) -> int:
    """Run ``statements`` in one transaction and return the transaction id it committed as."""
    async with conn.transaction():
        for statement in statements:
            await conn.execute(statement)
        return int(await conn.fetchval("SELECT pg_current_xact_id()::xid::text"))


async def release_standby_horizon(stack: NativeStack, conn: asyncpg.Connection) -> None:
    """Wait until the replica's slot no longer pins row versions this session made dead.

    With ``hot_standby_feedback`` the replica reports the oldest transaction it still needs, and the primary keeps
    every row version that transaction could see: VACUUM counts them "dead but not yet removable", and does not
    mark their pages all-visible. The replica reports every ``wal_receiver_status_interval`` (10 s) at most, and at
    once when it reloads its configuration, so the poll asks it to reload.
    """
    xid = await committed_xid(conn)

    async def slot_passed_xid() -> bool:
        await asyncio.to_thread(stack.replica.sql, "SELECT pg_reload_conf()")
        slot_xmin = await conn.fetchval("SELECT xmin::text FROM pg_replication_slots WHERE slot_name = $1", SLOT)
        return slot_xmin is None or int(slot_xmin) > xid

    await wait_for_async(slot_passed_xid, timeout_s=10, what=f"the replica's slot xmin to pass {xid}", interval_s=0.1)


async def snapshot_reading(dsn: str, query: str) -> asyncpg.Connection:
    """A connection in a REPEATABLE READ transaction whose snapshot is taken now (at its first statement, not at
    BEGIN): it keeps seeing the database as it was at this moment."""
    snapshot = await asyncpg.connect(dsn)
    await snapshot.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    await snapshot.fetch(query)
    return snapshot


async def relation_size(conn: asyncpg.Connection, relation: str) -> int:
    return int(await conn.fetchval("SELECT pg_relation_size($1::regclass)", relation))


async def lock_waited_for(conn: asyncpg.Connection, pid: int, table: str) -> str:
    """The mode of the lock ``pid`` is queued for on ``table``, once it queues."""

    async def waiting_mode() -> str:
        query = "SELECT mode FROM pg_locks WHERE pid = $1 AND relation = $2::regclass AND NOT granted"
        mode: str | None = await conn.fetchval(query, pid, table)
        return mode or ""

    return await wait_for_async(waiting_mode, timeout_s=5, what=f"backend {pid} to queue for a lock on {table}")


async def table_stats(conn: asyncpg.Connection, table: str, **expected: int) -> dict[str, int]:
    """``pg_stat_user_tables`` for ``table`` once the counters in ``expected`` show those values.

    A backend sends its counters to the shared statistics when it goes idle, at most once a second;
    ``pg_stat_force_next_flush()`` lifts that limit for this backend, and the poll covers the rest.
    """
    await conn.execute("SELECT pg_stat_force_next_flush()")

    async def flushed() -> dict[str, int]:
        row = await conn.fetchrow("SELECT * FROM pg_stat_user_tables WHERE relname = $1", table)
        if row is None or any(row[name] != value for name, value in expected.items()):
            return {}
        return {name: row[name] for name in ("n_tup_upd", "n_tup_hot_upd", "n_dead_tup", "n_live_tup")}

    return await wait_for_async(flushed, timeout_s=5, what=f"statistics of {table} to show {expected}")


async def plan_of(conn: asyncpg.Connection, query: str) -> dict[str, Any]:
    """The root node of ``EXPLAIN (ANALYZE, FORMAT JSON)``."""
    explained = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}")
    plan: dict[str, Any] = json.loads(explained)[0]["Plan"]
    return plan


def node_on(plan: dict[str, Any], node_type: str) -> dict[str, Any]:
    found = [node for node in nodes(plan) if node["Node Type"] == node_type]
    assert len(found) == 1, [node["Node Type"] for node in nodes(plan)]
    return found[0]


# --- MVCC ---------------------------------------------------------------------------------------------------


async def test_an_update_writes_a_new_row_version_and_older_snapshots_keep_reading_the_old_ones(
    housekeeping: Housekeeping, conn: asyncpg.Connection
) -> None:
    """``xmin`` is the transaction that wrote a version, ``xmax`` the one that deleted or replaced it (0: nobody),
    ``ctid`` where the version lies (page, slot). An UPDATE is a delete plus an insert: the new version gets a new
    ctid, and the old one stays on the page, with ``xmax`` set, for every snapshot taken before the update."""
    await conn.execute(
        "CREATE TABLE mvcc_seat (id int PRIMARY KEY, status text NOT NULL) WITH (autovacuum_enabled = false)"
    )
    version = "SELECT ctid::text, xmin::text::bigint, xmax::text::bigint, status FROM mvcc_seat WHERE id = 1"
    inserted = await committed_xid(conn, "INSERT INTO mvcc_seat VALUES (1, 'available')")
    assert tuple(await conn.fetchrow(version)) == ("(0,1)", inserted, 0, "available")

    before_update = await snapshot_reading(housekeeping.dsn, version)
    try:
        updated = await committed_xid(conn, "UPDATE mvcc_seat SET status = 'held' WHERE id = 1")
        assert tuple(await conn.fetchrow(version)) == ("(0,2)", updated, 0, "held")
        before_delete = await snapshot_reading(housekeeping.dsn, version)
        try:
            deleted = await committed_xid(conn, "DELETE FROM mvcc_seat WHERE id = 1")
            assert await conn.fetchrow(version) is None
            assert tuple(await before_update.fetchrow(version)) == ("(0,1)", inserted, updated, "available")
            assert tuple(await before_delete.fetchrow(version)) == ("(0,2)", updated, deleted, "held")
        finally:
            await before_delete.close()
    finally:
        await before_update.close()
    print(f"\nxids: insert {inserted}, update {updated}, delete {deleted}")


# --- bloat, VACUUM, VACUUM FULL ------------------------------------------------------------------------------

BLOAT_ROWS = 10_000
STORM_UPDATES = 5


async def test_an_update_storm_bloats_the_table_vacuum_makes_the_space_reusable_and_vacuum_full_returns_it(
    housekeeping: Housekeeping, conn: asyncpg.Connection
) -> None:
    """Five updates of every row leave five dead versions per live one. VACUUM removes them once no snapshot can
    see them, and the file keeps its size, so the next update fills the freed space instead of growing it. VACUUM
    FULL writes a new, compact file. While the replica's replay is paused its slot pins the dead versions, and
    VACUUM removes none of them: a lagging or long-running replica query bloats the primary."""
    stack = housekeeping.stack
    await conn.execute(
        "CREATE TABLE bloat_ticket (id int PRIMARY KEY, n int NOT NULL, note text NOT NULL) "
        "WITH (autovacuum_enabled = false)"
    )
    await conn.execute(
        "INSERT INTO bloat_ticket SELECT g, 0, repeat('x', 100) FROM generate_series(1, $1) g", BLOAT_ROWS
    )
    fresh = await relation_size(conn, "bloat_ticket")
    tuples = "SELECT tuple_count, dead_tuple_count, round(free_percent) FROM pgstattuple('bloat_ticket')"

    await asyncio.to_thread(stack.replica.pause_replay)
    try:
        for _ in range(STORM_UPDATES):
            await conn.execute("UPDATE bloat_ticket SET n = n + 1")
        stormed = await relation_size(conn, "bloat_ticket")
        live, dead, _ = await conn.fetchrow(tuples)
        assert (live, dead) == (BLOAT_ROWS, STORM_UPDATES * BLOAT_ROWS)
        await conn.execute("VACUUM bloat_ticket")
        live, dead_after_pinned_vacuum, _ = await conn.fetchrow(tuples)
        assert dead_after_pinned_vacuum == STORM_UPDATES * BLOAT_ROWS  # the replica still needs them
    finally:
        await asyncio.to_thread(stack.replica.resume_replay)

    await release_standby_horizon(stack, conn)
    await conn.execute("VACUUM bloat_ticket")
    vacuumed = await relation_size(conn, "bloat_ticket")
    live, dead, free_percent = await conn.fetchrow(tuples)
    assert (live, dead) == (BLOAT_ROWS, 0)
    assert vacuumed == stormed  # the space is free inside the file, not given back
    await conn.execute("UPDATE bloat_ticket SET n = n + 1")
    assert await relation_size(conn, "bloat_ticket") == stormed  # ...and the next update reuses it

    await release_standby_horizon(stack, conn)  # or VACUUM FULL copies that update's dead versions too
    await conn.execute("VACUUM FULL bloat_ticket")
    compacted = await relation_size(conn, "bloat_ticket")
    assert compacted == fresh
    print(
        f"\n{BLOAT_ROWS} rows: fresh {fresh} B; after {STORM_UPDATES} updates {stormed} B "
        f"({stormed / fresh:.1f}x), {STORM_UPDATES * BLOAT_ROWS} dead; VACUUM with the slot pinned: "
        f"{dead_after_pinned_vacuum} dead; VACUUM: {vacuumed} B, 0 dead, {free_percent}% free; "
        f"VACUUM FULL: {compacted} B"
    )


async def test_vacuum_lets_readers_and_writers_pass_while_vacuum_full_locks_out_even_readers(
    housekeeping: Housekeeping, conn: asyncpg.Connection
) -> None:
    """Each VACUUM is queued behind a transaction holding SHARE UPDATE EXCLUSIVE (the lock a plain VACUUM takes,
    and conflicts with itself), so the mode it asks for shows in ``pg_locks``. Behind a queued plain VACUUM a reader
    and a writer go straight through. Behind a queued VACUUM FULL (ACCESS EXCLUSIVE: it rewrites the table) a plain
    SELECT waits, and gives up at its ``lock_timeout``: in production every query on the table waits that long."""
    await conn.execute(
        "CREATE TABLE lock_ticket (id int PRIMARY KEY, n int NOT NULL) WITH (autovacuum_enabled = false)"
    )
    await conn.execute("INSERT INTO lock_ticket SELECT g, 0 FROM generate_series(1, 1000) g")
    holder, vacuumer, client = [await asyncpg.connect(housekeeping.dsn) for _ in range(3)]
    try:
        await client.execute(f"SET lock_timeout = '{SHORT_LOCK_TIMEOUT}'")
        queued_modes = []
        for command in ("VACUUM", "VACUUM FULL"):
            async with holder.transaction():
                await holder.execute("LOCK TABLE lock_ticket IN SHARE UPDATE EXCLUSIVE MODE")
                vacuum = asyncio.create_task(vacuumer.execute(f"{command} lock_ticket"))
                queued_modes.append(await lock_waited_for(conn, vacuumer.get_server_pid(), "lock_ticket"))
                if command == "VACUUM":
                    assert await client.fetchval("SELECT count(*) FROM lock_ticket") == 1000
                    assert await client.execute("UPDATE lock_ticket SET n = 1 WHERE id = 1") == "UPDATE 1"
                else:
                    began = time.monotonic()
                    with pytest.raises(asyncpg.LockNotAvailableError):
                        await client.fetchval("SELECT count(*) FROM lock_ticket")
                    waited = time.monotonic() - began
            await asyncio.wait_for(vacuum, timeout=10)
    finally:
        for connection in (holder, vacuumer, client):
            await connection.close()
    assert queued_modes == ["ShareUpdateExclusiveLock", "AccessExclusiveLock"]
    assert LOCK_TIMEOUT_S <= waited < LOCK_TIMEOUT_S + 1
    print(f"\nqueued for {queued_modes}; a SELECT behind VACUUM FULL gave up after {waited * 1000:.0f} ms")


# --- autovacuum's thresholds ---------------------------------------------------------------------------------

# Autovacuum vacuums a table once n_dead_tup > threshold + scale_factor × reltuples, each from the table's own
# storage parameters if set, else from the server's settings. The same with n_mod_since_analyze for ANALYZE.
AUTOVACUUM_THRESHOLDS = """
SELECT s.relname, s.n_dead_tup, s.n_mod_since_analyze,
    coalesce(vt.option_value, current_setting('autovacuum_vacuum_threshold'))::float8
    + coalesce(vs.option_value, current_setting('autovacuum_vacuum_scale_factor'))::float8 * c.reltuples
        AS vacuum_threshold,
    current_setting('autovacuum_analyze_threshold')::float8
    + current_setting('autovacuum_analyze_scale_factor')::float8 * c.reltuples AS analyze_threshold
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
LEFT JOIN pg_options_to_table(c.reloptions) vt ON vt.option_name = 'autovacuum_vacuum_threshold'
LEFT JOIN pg_options_to_table(c.reloptions) vs ON vs.option_name = 'autovacuum_vacuum_scale_factor'
WHERE s.relname = ANY($1::text[])
ORDER BY s.relname
"""
AUTOVACUUM_ROWS = 10_000


async def test_autovacuum_is_due_once_dead_rows_pass_threshold_plus_scale_factor_times_reltuples(
    housekeeping: Housekeeping, conn: asyncpg.Connection
) -> None:
    """With the defaults a 10,000-row table is due at 50 + 0.2 × 10,000 = 2,050 dead rows: 2,000 are not enough,
    2,051 are. A table tuned to ``autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 100`` is
    due at 200. (The launcher itself wakes every ``autovacuum_naptime``, a minute, too slow to wait for here.)"""
    names = (
        "autovacuum",
        "autovacuum_naptime",
        "autovacuum_vacuum_threshold",
        "autovacuum_vacuum_scale_factor",
        "autovacuum_analyze_threshold",
        "autovacuum_analyze_scale_factor",
    )
    settings = dict(await conn.fetch("SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])", names))
    assert settings == dict(zip(names, ("on", "60", "50", "0.2", "50", "0.1"), strict=True))

    tuned = "autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 100"
    for table, options in (("av_default", ""), ("av_tuned", f", {tuned}")):
        await conn.execute(
            f"CREATE TABLE {table} (id int PRIMARY KEY, n int NOT NULL) WITH (autovacuum_enabled = false{options})"
        )
        await conn.execute(f"INSERT INTO {table} SELECT g, 0 FROM generate_series(1, $1) g", AUTOVACUUM_ROWS)
        # The inserts' counters must reach the shared statistics before ANALYZE resets n_mod_since_analyze, or
        # they arrive after it and count as 10,000 modifications since.
        await table_stats(conn, table, n_tup_ins=AUTOVACUUM_ROWS)
        await conn.execute(f"ANALYZE {table}")  # reltuples = 10,000; n_dead_tup starts at 0

    async def thresholds() -> dict[str, tuple[Any, ...]]:
        rows = await conn.fetch(AUTOVACUUM_THRESHOLDS, ["av_default", "av_tuned"])
        return {row["relname"]: tuple(row.values())[1:] for row in rows}

    # A page visited later prunes the dead versions no snapshot needs, which lowers n_dead_tup: a snapshot older
    # than the updates keeps them all, so the counts stay exact.
    pin = await snapshot_reading(housekeeping.dsn, "SELECT 1")
    try:
        for table in ("av_default", "av_tuned"):
            await conn.execute(f"UPDATE {table} SET n = 1 WHERE id <= 2000")
            await table_stats(conn, table, n_dead_tup=2000)
        assert await thresholds() == {
            "av_default": (2000, 2000, 2050.0, 1050.0),
            "av_tuned": (2000, 2000, 200.0, 1050.0),
        }
        await conn.execute("UPDATE av_default SET n = 1 WHERE id > $1 - 51", AUTOVACUUM_ROWS)
        await table_stats(conn, "av_default", n_dead_tup=2051)
        measured = await thresholds()
    finally:
        await pin.close()
    due = sorted(table for table, (dead, _, vacuum_at, _) in measured.items() if dead > vacuum_at)
    assert due == ["av_default", "av_tuned"]
    print(f"\n(relname: n_dead_tup, n_mod_since_analyze, vacuum at, analyze at) {measured}")


# --- HOT updates ---------------------------------------------------------------------------------------------

HOT_ROWS = 1000


async def test_an_update_is_hot_only_with_room_on_the_page_and_no_index_on_the_changed_column(
    conn: asyncpg.Connection,
) -> None:
    """A heap-only tuple (HOT) update puts the new version on the same page and adds no index entry. It needs
    room on that page (``fillfactor = 50`` leaves half of each page free) and no index on any changed column.
    One pass over 1000 rows: 1000 HOT updates with room; 0 on full pages (fillfactor 100) or with ``n`` indexed."""
    tables = {"hot_roomy": 50, "hot_packed": 100, "hot_indexed": 50}
    for table, fillfactor in tables.items():
        await conn.execute(
            f"CREATE TABLE {table} (id int PRIMARY KEY, n int NOT NULL, note text NOT NULL) "
            f"WITH (fillfactor = {fillfactor}, autovacuum_enabled = false)"
        )
        await conn.execute(f"INSERT INTO {table} SELECT g, 0, repeat('x', 100) FROM generate_series(1, $1) g", HOT_ROWS)
    await conn.execute("CREATE INDEX ix_hot_indexed_n ON hot_indexed (n)")

    measured = {}
    for table in tables:
        primary_key_before = await relation_size(conn, f"{table}_pkey")
        await conn.execute(f"UPDATE {table} SET n = n + 1")
        stats = await table_stats(conn, table, n_tup_upd=HOT_ROWS)
        grew = await relation_size(conn, f"{table}_pkey") - primary_key_before
        measured[table] = (stats["n_tup_hot_upd"], grew)
    print(f"\n(HOT updates of {HOT_ROWS}, bytes the primary key index grew) {measured}")
    assert {table: hot for table, (hot, _) in measured.items()} == {
        "hot_roomy": 1000,
        "hot_packed": 0,
        "hot_indexed": 0,
    }
    assert measured["hot_roomy"][1] == 0  # no new index entries at all
    assert measured["hot_packed"][1] > 0
    assert measured["hot_indexed"][1] > 0


# --- transaction ids: age, freezing, wraparound --------------------------------------------------------------

BURNED_XIDS = 20


async def test_vacuum_freeze_advances_relfrozenxid_and_marks_every_page_frozen(
    housekeeping: Housekeeping, conn: asyncpg.Connection
) -> None:
    """Transaction ids are 32 bits and compared modulo 2^32, so a row version older than 2^31 transactions would
    look like it is in the future. VACUUM freezes old versions (visible to everyone, whatever the counter says) and
    advances ``relfrozenxid``; ``age(datfrozenxid)`` is the database's oldest unfrozen table. Autovacuum forces an
    anti-wraparound VACUUM at ``autovacuum_freeze_max_age`` (200 million) even on a table where it is disabled."""
    freeze_max_age = int(await conn.fetchval("SELECT current_setting('autovacuum_freeze_max_age')"))
    database_age = int(
        await conn.fetchval("SELECT age(datfrozenxid) FROM pg_database WHERE datname = current_database()")
    )
    assert freeze_max_age == 200_000_000
    assert 0 < database_age < freeze_max_age

    await conn.execute("CREATE TABLE frozen_ticket (id int PRIMARY KEY) WITH (autovacuum_enabled = false)")
    await conn.execute("INSERT INTO frozen_ticket SELECT generate_series(1, 1000)")
    for _ in range(BURNED_XIDS):
        await committed_xid(conn)  # each one transaction id: the counter is the whole cluster's
    table_age = "SELECT age(relfrozenxid) FROM pg_class WHERE relname = 'frozen_ticket'"
    frozen_pages = "SELECT all_frozen FROM pg_visibility_map_summary('frozen_ticket')"
    age_before = await conn.fetchval(table_age)
    assert age_before > BURNED_XIDS
    assert await conn.fetchval(frozen_pages) == 0

    await release_standby_horizon(housekeeping.stack, conn)  # freezing stops at the oldest xid anyone still needs
    await conn.execute("VACUUM (FREEZE) frozen_ticket")
    age_after = await conn.fetchval(table_age)
    pages = await conn.fetchval("SELECT relpages FROM pg_class WHERE relname = 'frozen_ticket'")
    assert age_after < BURNED_XIDS < age_before
    assert await conn.fetchval(frozen_pages) == pages > 0
    print(
        f"\nage(datfrozenxid) {database_age} of autovacuum_freeze_max_age {freeze_max_age}, "
        f"{2**31 - database_age} xids from wraparound; frozen_ticket age {age_before} -> {age_after} "
        f"after VACUUM (FREEZE), {pages} of {pages} pages all-frozen"
    )


# --- CREATE INDEX vs CREATE INDEX CONCURRENTLY ----------------------------------------------------------------

CONCURRENT_WRITES = 20
HELD_MODES = """
SELECT array_agg(mode ORDER BY mode) FROM pg_locks WHERE pid = $1 AND relation = 'ci_booking'::regclass AND granted
"""


async def test_create_index_blocks_writers_while_create_index_concurrently_lets_them_write(
    housekeeping: Housekeeping, conn: asyncpg.Connection
) -> None:
    """Plain CREATE INDEX holds SHARE (readers pass, writers wait) for its whole build; here its transaction stays
    open so the window is wide, and a writer gives up at its ``lock_timeout``. CREATE INDEX CONCURRENTLY holds
    only SHARE UPDATE EXCLUSIVE; it waits for the transactions already writing to the table (one is left open here,
    so it is caught waiting), and meanwhile every one of 20 new writes commits at once."""
    await conn.execute(
        "CREATE TABLE ci_booking (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ref int NOT NULL) "
        "WITH (autovacuum_enabled = false)"
    )
    await conn.execute("INSERT INTO ci_booking (ref) SELECT g FROM generate_series(1, 10000) g")
    insert = "INSERT INTO ci_booking (ref) VALUES (0)"
    builder, writer, straggler = [await asyncpg.connect(housekeeping.dsn) for _ in range(3)]
    try:
        await writer.execute(f"SET lock_timeout = '{SHORT_LOCK_TIMEOUT}'")
        plain_build = builder.transaction()
        await plain_build.start()
        await builder.execute("CREATE INDEX ix_ci_booking_ref ON ci_booking (ref)")
        assert await writer.fetchval("SELECT count(*) FROM ci_booking") == 10000  # readers pass
        with pytest.raises(asyncpg.LockNotAvailableError):
            await writer.execute(insert)
        plain_modes = await conn.fetchval(HELD_MODES, builder.get_server_pid())
        await plain_build.rollback()

        async with straggler.transaction():
            await straggler.execute(insert)  # a writer already in the table when the build starts
            build = asyncio.create_task(
                builder.execute("CREATE INDEX CONCURRENTLY ix_ci_booking_ref ON ci_booking (ref)")
            )

            async def build_phase() -> str | None:
                phase: str | None = await conn.fetchval(
                    "SELECT phase FROM pg_stat_progress_create_index WHERE pid = $1", builder.get_server_pid()
                )
                return phase if phase and phase.startswith("waiting") else None

            phase = await wait_for_async(build_phase, timeout_s=5, what="CREATE INDEX CONCURRENTLY to wait")
            concurrent_modes = await conn.fetchval(HELD_MODES, builder.get_server_pid())
            for _ in range(CONCURRENT_WRITES):
                await writer.execute(insert)
            assert not build.done()
        await asyncio.wait_for(build, timeout=10)
    finally:
        for connection in (builder, writer, straggler):
            await connection.close()
    assert (plain_modes, concurrent_modes) == (["ShareLock"], ["ShareUpdateExclusiveLock"])
    assert phase == "waiting for writers before build"
    valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_ci_booking_ref'::regclass"
    assert await conn.fetchval(valid) is True
    assert await conn.fetchval("SELECT count(*) FROM ci_booking") == 10000 + 1 + CONCURRENT_WRITES
    print(f"\nCREATE INDEX held {plain_modes}; CONCURRENTLY held {concurrent_modes} and was '{phase}'")


# --- a column rename by expand and contract ------------------------------------------------------------------

MAX_RENAME_WRITES = 5000  # the bound of the writer's loop; the test stops it long before
WRITES_PER_STEP = 30

SYNC_NAMES = """
CREATE FUNCTION member_sync_names() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.display_name := coalesce(NEW.display_name, NEW.full_name);
    NEW.full_name := coalesce(NEW.full_name, NEW.display_name);
    RETURN NEW;
END $$;
CREATE TRIGGER member_sync_names BEFORE INSERT OR UPDATE ON member FOR EACH ROW EXECUTE FUNCTION member_sync_names();
"""
BACKFILL_BATCH = """
UPDATE member SET display_name = full_name WHERE id IN (SELECT id FROM member WHERE display_name IS NULL LIMIT 50)
"""


@dataclass
class MemberWriter:
    """The live write load: one insert after another, first as the old release writes (``full_name``), then, once
    ``new_release`` is set, as the new one does (``display_name``), until ``stopped`` or ``MAX_RENAME_WRITES``."""

    conn: asyncpg.Connection
    new_release: bool = False
    stopped: bool = False
    written: list[str] = field(default_factory=list)
    written_by_new_release: int = 0
    failures: list[str] = field(default_factory=list)

    async def run(self) -> None:
        await self.conn.execute("SET lock_timeout = '2s'")
        for i in range(MAX_RENAME_WRITES):
            if self.stopped:
                return
            column = "display_name" if self.new_release else "full_name"
            name = f"member {i}"
            try:
                await self.conn.execute(f"INSERT INTO member ({column}) VALUES ($1)", name)
            except asyncpg.PostgresError as error:
                self.failures.append(f"{name}: {error!r}")
            else:
                self.written.append(name)
                if self.new_release:
                    self.written_by_new_release += 1

    async def after_more_writes(self, count: int) -> None:
        """Return once ``count`` more inserts have committed (as the current release, if it is the new one)."""

        def done() -> int:
            return self.written_by_new_release if self.new_release else len(self.written)

        start = done()

        async def progressed() -> bool:
            return done() >= start + count or bool(self.failures)

        await wait_for_async(progressed, timeout_s=10, what=f"{count} more writes")


async def test_a_column_renamed_by_expand_and_contract_loses_no_write_under_a_live_write_load(
    housekeeping: Housekeeping, conn: asyncpg.Connection
) -> None:
    """``RENAME COLUMN`` is instant, and every running release that still names the old column fails at once.
    Expand and contract instead: add the new column and a trigger that fills whichever column a writer left out;
    backfill in small batches; switch the writers; add NOT NULL as a CHECK ``NOT VALID`` and validate it (no
    long ACCESS EXCLUSIVE scan); then drop the trigger and the old column. Every step takes its lock only briefly,
    so the writer, inserting the whole time, never fails, and every row it wrote is there under the new name."""
    await conn.execute("CREATE TABLE member_naive (id int GENERATED ALWAYS AS IDENTITY, full_name text)")
    await conn.execute("ALTER TABLE member_naive RENAME COLUMN full_name TO display_name")
    with pytest.raises(asyncpg.UndefinedColumnError):
        await conn.execute("INSERT INTO member_naive (full_name) VALUES ('the old release')")

    await conn.execute("CREATE TABLE member (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, full_name text)")
    await conn.execute("SET lock_timeout = '1s'")
    writer = MemberWriter(await asyncpg.connect(housekeeping.dsn))
    writing = asyncio.create_task(writer.run())
    try:
        await writer.after_more_writes(WRITES_PER_STEP)
        async with conn.transaction():  # expand
            await conn.execute("ALTER TABLE member ADD COLUMN display_name text")
            await conn.execute(SYNC_NAMES)
        await writer.after_more_writes(WRITES_PER_STEP)
        batches = 0
        while await conn.execute(BACKFILL_BATCH) != "UPDATE 0":
            batches += 1
        await writer.after_more_writes(WRITES_PER_STEP)
        writer.new_release = True  # the new release rolls out; the old one is gone once it has written
        await writer.after_more_writes(WRITES_PER_STEP)
        await conn.execute(
            "ALTER TABLE member ADD CONSTRAINT ck_member_display_name_not_null "
            "CHECK (display_name IS NOT NULL) NOT VALID"
        )
        await conn.execute("ALTER TABLE member VALIDATE CONSTRAINT ck_member_display_name_not_null")
        async with conn.transaction():  # contract
            await conn.execute("DROP TRIGGER member_sync_names ON member")
            await conn.execute("DROP FUNCTION member_sync_names()")
            await conn.execute("ALTER TABLE member DROP COLUMN full_name")
        await writer.after_more_writes(WRITES_PER_STEP)
    finally:
        writer.stopped = True
        await asyncio.wait_for(writing, timeout=10)
        await writer.conn.close()

    assert writer.failures == []
    assert batches > 0
    assert WRITES_PER_STEP * 2 <= writer.written_by_new_release < len(writer.written) < MAX_RENAME_WRITES
    columns = await conn.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'member'::regclass AND attnum > 0 AND NOT attisdropped"
    )
    assert [column["attname"] for column in columns] == ["id", "display_name"]
    stored = [row["display_name"] for row in await conn.fetch("SELECT display_name FROM member ORDER BY id")]
    assert stored == writer.written  # every committed insert, in order, none lost, none doubled
    print(
        f"\n{len(writer.written)} inserts, 0 failed, {len(writer.written) - writer.written_by_new_release} "
        f"by the old release; backfill in {batches} batches of up to 50"
    )


# --- GIN, BRIN and a covering index --------------------------------------------------------------------------


async def test_a_gin_index_answers_jsonb_containment(conn: asyncpg.Connection) -> None:
    """GIN indexes the parts of a value (here each path and value of a jsonb document, ``jsonb_path_ops``), so
    ``@>`` finds the 10 documents tagged 'rare' among 10,000 without reading the others."""
    await conn.execute("CREATE TABLE doc (id int PRIMARY KEY, body jsonb NOT NULL) WITH (autovacuum_enabled = false)")
    await conn.execute(
        "INSERT INTO doc SELECT g, jsonb_build_object('tag', CASE WHEN g % 1000 = 0 THEN 'rare' "
        "ELSE 'common' || (g % 10) END, 'n', g) FROM generate_series(1, 10000) g"
    )
    await conn.execute("CREATE INDEX ix_doc_body_gin ON doc USING gin (body jsonb_path_ops)")
    await conn.execute("ANALYZE doc")
    plan = await plan_of(conn, """SELECT id FROM doc WHERE body @> '{"tag": "rare"}'""")
    scan = node_on(plan, "Bitmap Index Scan")
    assert (scan["Index Name"], scan["Actual Rows"]) == ("ix_doc_body_gin", 10)
    assert (plan["Node Type"], plan["Actual Rows"]) == ("Bitmap Heap Scan", 10)


async def test_a_brin_index_on_an_append_ordered_timestamp_is_tiny_and_skips_most_of_the_table(
    conn: asyncpg.Connection,
) -> None:
    """BRIN keeps one min/max summary per range of pages (4 here), useful only where the column follows the
    physical order, as an append-only ``taken_at`` does. It is lossy: the heap scan rechecks every row of the
    ranges it returns. A 5-minute window out of 20,000 one-second readings."""
    await conn.execute(
        "CREATE TABLE reading (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, taken_at timestamptz NOT NULL, "
        "value int NOT NULL) WITH (autovacuum_enabled = false)"
    )
    await conn.execute(
        "INSERT INTO reading (taken_at, value) SELECT timestamptz '2026-01-01' + g * interval '1 second', g % 100 "
        "FROM generate_series(1, 20000) g"
    )
    await conn.execute(
        "CREATE INDEX ix_reading_taken_at_brin ON reading USING brin (taken_at) WITH (pages_per_range = 4)"
    )
    await conn.execute("ANALYZE reading")
    plan = await plan_of(
        conn,
        "SELECT count(*) FROM reading WHERE taken_at >= '2026-01-01 01:00+00' AND taken_at < '2026-01-01 01:05+00'",
    )
    scan, heap = node_on(plan, "Bitmap Index Scan"), node_on(plan, "Bitmap Heap Scan")
    assert scan["Index Name"] == "ix_reading_taken_at_brin"
    assert heap["Actual Rows"] == 300
    assert heap["Rows Removed by Index Recheck"] > 0
    assert heap["Lossy Heap Blocks"] > 0
    brin = await relation_size(conn, "ix_reading_taken_at_brin")
    btree, table = await relation_size(conn, "reading_pkey"), await relation_size(conn, "reading")
    assert brin * 10 < btree
    print(
        f"\nBRIN {brin} B vs the primary key's B-tree {btree} B on a {table} B table; read "
        f"{heap['Lossy Heap Blocks']} pages, rechecked away {heap['Rows Removed by Index Recheck']} rows"
    )


async def test_a_covering_index_answers_from_the_index_alone_once_vacuum_set_the_visibility_map(
    housekeeping: Housekeeping, conn: asyncpg.Connection
) -> None:
    """``INCLUDE (total)`` carries a column in the index's leaf pages without making it part of the key, so
    ``SELECT customer_id, total … WHERE customer_id = …`` needs no heap row: an Index Only Scan. It skips the heap
    only for pages the visibility map marks all-visible, which VACUUM sets; before that the planner reads the heap
    (a bitmap scan here), after it 0 heap fetches."""
    await conn.execute(
        "CREATE TABLE purchase (id int PRIMARY KEY, customer_id int NOT NULL, total int NOT NULL, note text NOT NULL)"
        " WITH (autovacuum_enabled = false)"
    )
    await conn.execute(
        "INSERT INTO purchase SELECT g, g % 500, g % 97, repeat('y', 50) FROM generate_series(1, 10000) g"
    )
    await conn.execute("CREATE INDEX ix_purchase_customer_id ON purchase (customer_id) INCLUDE (total)")
    query = "SELECT customer_id, total FROM purchase WHERE customer_id = 42"
    await conn.execute("ANALYZE purchase")
    before_vacuum = node_on(await plan_of(conn, query), "Bitmap Index Scan")
    assert before_vacuum["Index Name"] == "ix_purchase_customer_id"

    await release_standby_horizon(housekeeping.stack, conn)  # or VACUUM cannot call the new rows all-visible
    await conn.execute("VACUUM purchase")
    plan = await plan_of(conn, query)
    assert (plan["Node Type"], plan["Index Name"]) == ("Index Only Scan", "ix_purchase_customer_id")
    assert (plan["Actual Rows"], plan["Heap Fetches"]) == (20, 0)
