"""A replication slot holds WAL for its replica only up to ``max_slot_wal_keep_size``; a replica further behind
loses its slot instead of filling the primary's disk.

The claims (notes/db_scaling.md, "How the stack builds the replica"; notes/docker.md, "Failure modes"): the
native stack sets ``max_slot_wal_keep_size = 1GB`` (docker-compose.yml sets the same), and a slot whose replica
is gone keeps its WAL while within the bound and is invalidated (``wal_status = 'lost'``) at the first checkpoint
past it. Writing 1 GB of WAL would take most of a minute, so the second half lowers the bound on this private
primary to 32 MB; the mechanism is the same. Runs on a bare primary and replica of its own, never the session
stack.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from stack.native.layout import Layout
from stack.native.postgres import SLOT, PostgresPrimary, PostgresReplica
from tests.polling import wait_for

pytestmark = pytest.mark.slow
SEGMENT_BYTES = 16 * 1024 * 1024  # initdb's default wal_segment_size


@pytest.fixture
def primary_with_gone_replica() -> Iterator[PostgresPrimary]:
    """A private primary whose replica took its base backup through slot ``replica1`` and then stopped."""
    layout = Layout.create(fixed=False)
    primary = PostgresPrimary(layout)
    replica = PostgresReplica(layout, primary)
    try:
        primary.start()
        replica.start()
        replica.stop()
        yield primary
    finally:
        replica.close()
        primary.close()
        shutil.rmtree(layout.base, ignore_errors=True)


def write_wal_segments(primary: PostgresPrimary, count: int) -> None:
    """Fill ``count`` WAL segments: a write, then a switch to the next segment (a switch alone after no write is
    a no-op)."""
    primary.sql("CREATE TABLE IF NOT EXISTS wal_filler (n int)")
    for _ in range(count):
        primary.sql("INSERT INTO wal_filler VALUES (1)")
        primary.sql("SELECT pg_switch_wal()")


def slot_state(primary: PostgresPrimary) -> tuple[str, int]:
    """The slot's ``wal_status`` and how many bytes of WAL it is behind the primary's current position."""
    status, behind = primary.sql(
        "SELECT wal_status, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint"
        f" FROM pg_replication_slots WHERE slot_name = '{SLOT}'"
    ).split("|")
    return status, int(behind)


def test_a_replica_further_behind_than_the_bound_loses_its_slot(primary_with_gone_replica: PostgresPrimary) -> None:
    primary = primary_with_gone_replica
    assert primary.sql("SHOW max_slot_wal_keep_size") == "1GB"

    write_wal_segments(primary, 4)
    primary.sql("CHECKPOINT")
    status, behind = slot_state(primary)
    assert behind > 3 * SEGMENT_BYTES
    assert status == "reserved"  # 64 MB behind, within 1 GB: every segment is kept

    primary.sql("ALTER SYSTEM SET max_slot_wal_keep_size = '32MB'")
    primary.sql("SELECT pg_reload_conf()")
    wait_for(lambda: primary.sql("SHOW max_slot_wal_keep_size") == "32MB", timeout_s=5, what="the lower bound")
    primary.sql("CHECKPOINT")
    assert slot_state(primary)[0] == "lost"
