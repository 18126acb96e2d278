"""Failover for real: fence the primary, promote the streaming replica, and the app writes to it; then the lab of
what asynchronous replication loses when the primary dies with WAL its replica never received.

The claims (notes/db_scaling.md, "Failover"): promotion is refused while the old primary runs (split brain); once
it is stopped and the replica promoted with ``python -m stack fault replica promote``, the app - same DSN, no
restart - reconnects and writes within seconds, and every write acknowledged before the promotion is on the new
primary when replication had caught up. Without that (the lab), each acknowledged commit the replica had not
received is gone after promotion, counted exactly.

Failover leaves no replica behind, so these tests run on stacks of their own, never on the session stack.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from stack.native.layout import Layout
from stack.native.postgres import SLOT, PostgresPrimary, PostgresReplica
from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, event_body, new_user
from tests.conftest import TEST_APP_SETTINGS
from tests.polling import wait_for

pytestmark = [pytest.mark.fault, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
ACKNOWLEDGED = 25
LOGS = Path(tempfile.gettempdir()) / "refstack-failover-logs"  # kept for reading after a failed run


@pytest.fixture(scope="module")
def own_stack() -> Iterator[NativeStack]:
    native = NativeStack(Layout.create(fixed=False), app_settings=TEST_APP_SETTINGS)
    native.up(report=lambda line: print(line, flush=True))
    try:
        yield native
    finally:
        shutil.copytree(native.layout.base / "logs", LOGS, dirs_exist_ok=True)
        native.down()


def stack_cli(stack: NativeStack, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m stack --state <this stack> ...`` from another process, as a person at a terminal runs it."""
    return subprocess.run(
        [sys.executable, "-m", "stack", "--state", str(stack.state_path), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def post_event(stack: NativeStack, organizer: ApiUser) -> tuple[int, str | None]:
    status, _, body = call(stack, "POST", "/api/v1/events", user=organizer, body=event_body(rows=1, seats_per_row=2))
    return status, body["id"] if status == 201 else None


def count_on(node: PostgresPrimary | PostgresReplica, ids: list[str]) -> int:
    listed = ", ".join(f"'{event_id}'" for event_id in ids)
    return int(node.sql(f"SELECT count(*) FROM event WHERE id IN ({listed})", database="refstack"))


async def test_promoted_replica_takes_the_writes_and_keeps_every_acknowledged_one(own_stack: NativeStack) -> None:
    organizer = new_user(own_stack, organizer=True, label="failover")
    acknowledged = []
    for _ in range(ACKNOWLEDGED):
        status, event_id = post_event(own_stack, organizer)
        assert status == 201
        acknowledged.append(event_id)
    wait_for(lambda: own_stack.replica.lag_bytes() == 0, timeout_s=10, what="replica caught up")

    refused = stack_cli(own_stack, "fault", "replica", "promote")
    assert refused.returncode == 1
    assert "split brain" in refused.stderr
    assert stack_cli(own_stack, "fault", "postgres", "stop").returncode == 0
    outage = [post_event(own_stack, organizer)[0] for _ in range(6)]
    assert outage == [503] * 6  # no primary: a clear retryable problem, never a 500 or a hang

    promoted = stack_cli(own_stack, "fault", "replica", "promote")
    assert promoted.returncode == 0, promoted.stderr

    after = wait_for(lambda: post_event(own_stack, organizer)[1], timeout_s=20, what="a write on the new primary")
    assert own_stack.replica.sql("SELECT pg_is_in_recovery()") == "f"
    assert count_on(own_stack.replica, [str(event_id) for event_id in acknowledged]) == ACKNOWLEDGED
    status, _, event = call(own_stack, "GET", f"/api/v1/events/{after}")
    assert (status, event["id"]) == (200, after)
    # The pooler was re-pointed too: through PgBouncer, the writable new primary.
    pooled = await asyncpg.connect(own_stack.pgbouncer.url, statement_cache_size=0)
    try:
        assert await pooled.fetchval("SELECT pg_is_in_recovery()") is False
    finally:
        await pooled.close()


@pytest.fixture
def pair() -> Iterator[tuple[PostgresPrimary, PostgresReplica]]:
    """A bare primary and its streaming replica, no app: the lab needs nothing else."""
    layout = Layout.create(fixed=False)
    primary = PostgresPrimary(layout)
    replica = PostgresReplica(layout, primary)
    try:
        primary.start()
        replica.start()
        yield primary, replica
    finally:
        replica.close()
        primary.close()


def crash(node: PostgresPrimary) -> None:
    """The machine dies: SIGKILL every process of the server at once (no shutdown checkpoint, no WAL flushed out)."""
    for pid in node.pids:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not node.process.alive(), timeout_s=10, what="primary gone")


def partition(primary: PostgresPrimary) -> None:
    """The WAL sender stops shipping, as in a network partition between the two; the primary goes on serving."""
    os.kill(int(primary.sql("SELECT pid FROM pg_stat_replication")), signal.SIGSTOP)


def promote(replica: PostgresReplica) -> None:
    assert replica.sql("SELECT pg_promote(wait => true, wait_seconds => 30)") == "t"


def test_async_replication_loses_acknowledged_commits_the_replica_never_received(
    pair: tuple[PostgresPrimary, PostgresReplica],
) -> None:
    primary, replica = pair
    primary.sql("CREATE TABLE ledger (id int PRIMARY KEY)")
    primary.sql("INSERT INTO ledger SELECT generate_series(1, 10)")
    wait_for(lambda: replica.lag_bytes() == 0, timeout_s=10, what="replica caught up")

    partition(primary)
    for row in range(11, 21):
        primary.sql(f"INSERT INTO ledger VALUES ({row})")  # each one acknowledged to its client
    assert primary.sql("SELECT count(*) FROM ledger") == "20"
    crash(primary)
    promote(replica)

    assert replica.sql("SELECT count(*) FROM ledger") == "10"  # ten acknowledged commits are gone
    assert replica.sql("SELECT max(id) FROM ledger") == "10"


async def test_remote_apply_acknowledges_only_what_the_replica_has_applied(
    pair: tuple[PostgresPrimary, PostgresReplica],
) -> None:
    primary, replica = pair
    primary.sql(f"ALTER SYSTEM SET synchronous_standby_names = '{SLOT}'")
    primary.sql("SELECT pg_reload_conf()")
    wait_for(lambda: primary.sql("SELECT sync_state FROM pg_stat_replication") == "sync", timeout_s=10, what="sync")
    client = await asyncpg.connect(primary.direct_url)
    await client.execute("SET synchronous_commit = remote_apply")
    await client.execute("CREATE TABLE ledger (id int PRIMARY KEY)")
    await client.execute("INSERT INTO ledger SELECT generate_series(1, 10)")
    # Acknowledged means applied on the replica: readable there at once, with no wait for replay.
    assert replica.sql("SELECT count(*) FROM ledger", database="refstack") == "10"

    partition(primary)
    unacknowledged = asyncio.ensure_future(client.execute("INSERT INTO ledger VALUES (11)"))
    done, _ = await asyncio.wait({unacknowledged}, timeout=1.0)
    assert not done  # the commit waits for the replica: its client has not been told "saved"
    crash(primary)
    with pytest.raises(asyncpg.exceptions.ConnectionDoesNotExistError):
        await unacknowledged  # and it never will be
    promote(replica)

    assert replica.sql("SELECT count(*) FROM ledger", database="refstack") == "10"  # every acknowledged row is there
