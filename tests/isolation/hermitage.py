"""The Hermitage anomalies as scripted interleavings of real PostgreSQL transactions, reusable by tests and printer.

Why scripts as data: each anomaly is one short async function over an ``Interleaving`` (two or three connections in
explicit transactions, plus an observer in autocommit). The function plays the statements in a fixed order and
returns whether the anomaly showed up in what the transactions read or in what was committed. The interleaving
records how PostgreSQL prevented it: a statement that waited for another transaction's row lock (seen in
``pg_blocking_pids``, not guessed from a timer), or a transaction aborted with 40001 / 40P01. Steps of a
transaction that was aborted are not sent, as a client would give up on it. The same functions drive
``tests/isolation/test_hermitage.py`` and ``bench/isolation_matrix.py``. Scenarios follow the order of Martin
Kleppmann's Hermitage (github.com/ept/hermitage), rewritten here. See notes/postgres.md ("Isolation levels, proved").
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import asyncpg

from tests.polling import wait_for_async

# How long a statement may take to either finish or be seen waiting on a lock; a healthy loopback server needs ms.
LOCK_WAIT_DEADLINE_S = 5.0
POLL_INTERVAL_S = 0.002
ABORTS = (asyncpg.exceptions.SerializationError, asyncpg.exceptions.DeadlockDetectedError)
Rows = dict[int, int]
T = TypeVar("T")


class Level(StrEnum):
    READ_COMMITTED = "read committed"
    REPEATABLE_READ = "repeatable read"
    SERIALIZABLE = "serializable"


@dataclass(frozen=True)
class Outcome:
    """One run: did the anomaly happen, did a statement wait on a lock, which SQLSTATE ended a transaction."""

    occurs: bool
    blocked: bool
    sqlstate: str | None

    @property
    def verdict(self) -> str:
        return "occurs" if self.occurs else "prevented"

    @property
    def how(self) -> str:
        """The mechanism seen; a prevention without lock waits or aborts was the snapshot's doing."""
        seen = [word for word, yes in (("blocked", self.blocked), (self.sqlstate or "", bool(self.sqlstate))) if yes]
        return " + ".join(seen) or ("snapshot" if not self.occurs else "-")


@dataclass
class Tx:
    """One client's transaction on its own connection."""

    name: str
    conn: Any  # asyncpg.Connection
    aborted: str | None = None
    committed: bool = False


@dataclass
class Interleaving:
    """The transactions of one case and the observer that watches their locks and reads the committed state."""

    table: str
    txs: Sequence[Tx]
    observer: Any  # asyncpg.Connection, autocommit
    blocked: bool = False
    sqlstates: list[str] = field(default_factory=list)

    @property
    def t1(self) -> Tx:
        return self.txs[0]

    @property
    def t2(self) -> Tx:
        return self.txs[1]

    @property
    def t3(self) -> Tx:
        return self.txs[2]

    def _sql(self, statement: str) -> str:
        return statement.format(t=self.table)

    async def _step(self, tx: Tx, statement: Callable[[], Awaitable[Any]]) -> tuple[bool, Any]:
        """Run one statement of ``tx``; a serialization failure or deadlock ends ``tx`` and is recorded."""
        if tx.aborted:
            return False, None
        try:
            return True, await statement()
        except ABORTS as error:
            tx.aborted = error.sqlstate
            self.sqlstates.append(error.sqlstate)
            await tx.conn.execute("rollback")
            return False, None

    async def read(self, tx: Tx, where: str = "true") -> Rows | None:
        """``id -> value`` of the rows ``tx`` sees; None once ``tx`` was aborted."""
        query = self._sql(f"select id, value from {{t}} where {where} order by id")
        ran, rows = await self._step(tx, lambda: tx.conn.fetch(query))
        return {row["id"]: row["value"] for row in rows} if ran else None

    async def write(self, tx: Tx, statement: str) -> bool:
        ran, _ = await self._step(tx, lambda: tx.conn.execute(self._sql(statement)))
        return ran

    async def commit(self, tx: Tx) -> bool:
        tx.committed, _ = await self._step(tx, lambda: tx.conn.execute("commit"))
        return tx.committed

    async def rollback(self, tx: Tx) -> None:
        await tx.conn.execute("rollback")

    async def expecting_wait(self, tx: Tx, statement: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start a statement of ``tx`` that may wait on a row lock; return once it is seen waiting or has finished.

        The wait is proved, not timed: the observer polls ``pg_blocking_pids`` of ``tx``'s backend until it names
        one of the other transactions while the task is still pending (recorded as ``blocked``), or the task is
        done first. Await the task after the holder commits or rolls back.
        """
        task = asyncio.create_task(statement)
        pid = tx.conn.get_server_pid()
        others = {other.conn.get_server_pid() for other in self.txs if other is not tx}

        async def waiting_or_done() -> bool:
            if task.done():
                return True
            blockers = await self.observer.fetchval("select pg_blocking_pids($1)", pid)
            if blockers and not task.done():
                assert set(blockers) <= others, f"{tx.name} waits on a backend outside this case: {blockers}"
                self.blocked = True
                return True
            return task.done()

        try:
            await wait_for_async(
                waiting_or_done,
                timeout_s=LOCK_WAIT_DEADLINE_S,
                what=f"{tx.name} to finish or wait on a lock",
                interval_s=POLL_INTERVAL_S,
            )
        except BaseException:  # pytest's failure at the deadline is no Exception; the statement must not outlive it
            task.cancel()
            raise
        return task

    async def committed_rows(self, where: str = "true") -> Rows:
        """The committed state, read outside every transaction of the case."""
        rows = await self.observer.fetch(self._sql(f"select id, value from {{t}} where {where} order by id"))
        return {row["id"]: row["value"] for row in rows}

    def outcome(self, occurs: bool) -> Outcome:
        return Outcome(occurs=occurs, blocked=self.blocked, sqlstate=self.sqlstates[0] if self.sqlstates else None)


Script = Callable[[Interleaving], Awaitable[bool]]


@dataclass(frozen=True)
class Anomaly:
    name: str
    title: str
    transactions: int
    script: Script


def seen(reads: Sequence[Rows | None], value: int) -> bool:
    return any(value in rows.values() for rows in reads if rows is not None)


async def write_cycle(lab: Interleaving) -> bool:
    """G0: two writers interleave on x1 and x2; it happened if the final pair mixes their writes."""
    t1, t2 = lab.t1, lab.t2
    await lab.write(t1, "update {t} set value = 11 where id = 1")
    waiting = await lab.expecting_wait(t2, lab.write(t2, "update {t} set value = 12 where id = 1"))
    await lab.write(t1, "update {t} set value = 21 where id = 2")
    await lab.commit(t1)
    await waiting
    await lab.write(t2, "update {t} set value = 22 where id = 2")
    await lab.commit(t2)
    final = await lab.committed_rows()
    return (final[1], final[2]) not in {(11, 21), (12, 22)}


async def aborted_read(lab: Interleaving) -> bool:
    """G1a: T2 must never see a value written by T1, which then rolls back."""
    t1, t2 = lab.t1, lab.t2
    await lab.write(t1, "update {t} set value = 101 where id = 1")
    before = await lab.read(t2)
    await lab.rollback(t1)
    after = await lab.read(t2)
    await lab.commit(t2)
    return seen([before, after], 101)


async def intermediate_read(lab: Interleaving) -> bool:
    """G1b: T2 must never see 101, a value T1 overwrote before committing."""
    t1, t2 = lab.t1, lab.t2
    await lab.write(t1, "update {t} set value = 101 where id = 1")
    during = await lab.read(t2)
    await lab.write(t1, "update {t} set value = 11 where id = 1")
    await lab.commit(t1)
    after = await lab.read(t2)
    await lab.commit(t2)
    return seen([during, after], 101)


async def circular_information_flow(lab: Interleaving) -> bool:
    """G1c: each transaction reads the item the other wrote; it happened if either saw the other's write."""
    t1, t2 = lab.t1, lab.t2
    await lab.write(t1, "update {t} set value = 11 where id = 1")
    await lab.write(t2, "update {t} set value = 22 where id = 2")
    t1_read = await lab.read(t1, "id = 2")
    t2_read = await lab.read(t2, "id = 1")
    await lab.commit(t1)
    await lab.commit(t2)
    return seen([t1_read], 22) or seen([t2_read], 11)


# Who wrote each value of the OTV script: the initial rows, then T1, then T2.
OTV_WRITER = {10: 0, 20: 0, 11: 1, 19: 1, 12: 2, 18: 2}


async def observed_transaction_vanishes(lab: Interleaving) -> bool:
    """OTV: once T3 has seen a transaction's write, it must never read a value older than that transaction."""
    t1, t2, t3 = lab.t1, lab.t2, lab.t3
    await lab.write(t1, "update {t} set value = 11 where id = 1")
    await lab.write(t1, "update {t} set value = 19 where id = 2")
    waiting = await lab.expecting_wait(t2, lab.write(t2, "update {t} set value = 12 where id = 1"))
    await lab.commit(t1)
    await waiting
    reads = [await lab.read(t3, "id = 1")]
    await lab.write(t2, "update {t} set value = 18 where id = 2")
    reads.append(await lab.read(t3, "id = 2"))
    await lab.commit(t2)
    reads += [await lab.read(t3, "id = 2"), await lab.read(t3, "id = 1")]
    await lab.commit(t3)
    writers = [OTV_WRITER[value] for rows in reads if rows is not None for value in rows.values()]
    return any(later < max(writers[:i]) for i, later in enumerate(writers) if i)


async def predicate_many_preceders(lab: Interleaving) -> bool:
    """PMP: a predicate read repeated after another transaction inserted a matching row must not see it."""
    t1, t2 = lab.t1, lab.t2
    await lab.read(t1, "value = 30")
    await lab.write(t2, "insert into {t} (id, value) values (3, 30)")
    await lab.commit(t2)
    again = await lab.read(t1, "value % 3 = 0")
    await lab.commit(t1)
    return seen([again], 30)


async def lost_update(lab: Interleaving) -> bool:
    """P4: both read x1 and write back what they read plus one; it happened if a committed increment is missing."""
    t1, t2 = lab.t1, lab.t2
    t1_read = await lab.read(t1, "id = 1")
    t2_read = await lab.read(t2, "id = 1")
    assert t1_read is not None
    assert t2_read is not None
    await lab.write(t1, f"update {{t}} set value = {t1_read[1] + 1} where id = 1")
    waiting = await lab.expecting_wait(t2, lab.write(t2, f"update {{t}} set value = {t2_read[1] + 1} where id = 1"))
    await lab.commit(t1)
    await waiting
    await lab.commit(t2)
    increments = sum(tx.committed for tx in lab.txs)
    return (await lab.committed_rows("id = 1"))[1] != 10 + increments


async def read_skew(lab: Interleaving) -> bool:
    """G-single: T2 moves 2 from x2 to x1 (sum stays 30); T1 reading x1 before and x2 after must still add to 30."""
    t1, t2 = lab.t1, lab.t2
    first = await lab.read(t1, "id = 1")
    await lab.read(t2)
    await lab.write(t2, "update {t} set value = 12 where id = 1")
    await lab.write(t2, "update {t} set value = 18 where id = 2")
    await lab.commit(t2)
    second = await lab.read(t1, "id = 2")
    await lab.commit(t1)
    assert first is not None
    assert second is not None
    return first[1] + second[2] != 30


async def write_skew(lab: Interleaving) -> bool:
    """G2-item: rule "x1 and x2 are never both 0"; each zeroes its own item after seeing the other's non-zero."""
    t1, t2 = lab.t1, lab.t2
    t1_read = await lab.read(t1, "id in (1, 2)")
    t2_read = await lab.read(t2, "id in (1, 2)")
    if t1_read is not None and t1_read[2] != 0:
        await lab.write(t1, "update {t} set value = 0 where id = 1")
    if t2_read is not None and t2_read[1] != 0:
        await lab.write(t2, "update {t} set value = 0 where id = 2")
    await lab.commit(t1)
    await lab.commit(t2)
    return set((await lab.committed_rows()).values()) == {0}


async def anti_dependency_cycle(lab: Interleaving) -> bool:
    """G2: rule "at most one row with value % 3 = 0"; each inserts one after its predicate read found none."""
    t1, t2 = lab.t1, lab.t2
    t1_read = await lab.read(t1, "value % 3 = 0")
    t2_read = await lab.read(t2, "value % 3 = 0")
    if t1_read == {}:
        await lab.write(t1, "insert into {t} (id, value) values (3, 30)")
    if t2_read == {}:
        await lab.write(t2, "insert into {t} (id, value) values (4, 42)")
    await lab.commit(t1)
    await lab.commit(t2)
    return len(await lab.committed_rows("value % 3 = 0")) > 1


ANOMALIES: tuple[Anomaly, ...] = (
    Anomaly("G0", "write cycles", 2, write_cycle),
    Anomaly("G1a", "aborted reads", 2, aborted_read),
    Anomaly("G1b", "intermediate reads", 2, intermediate_read),
    Anomaly("G1c", "circular information flow", 2, circular_information_flow),
    Anomaly("OTV", "observed transaction vanishes", 3, observed_transaction_vanishes),
    Anomaly("PMP", "predicate-many-preceders", 2, predicate_many_preceders),
    Anomaly("P4", "lost update", 2, lost_update),
    Anomaly("G-single", "read skew", 2, read_skew),
    Anomaly("G2-item", "write skew", 2, write_skew),
    Anomaly("G2", "anti-dependency cycles", 2, anti_dependency_cycle),
)


async def run_case(dsn: str, anomaly: Anomaly, level: Level) -> Outcome:
    """One anomaly at one level, on a private table ``hermitage_<hex>`` holding (1, 10) and (2, 20), dropped after."""
    table = f"hermitage_{secrets.token_hex(4)}"
    observer = await asyncpg.connect(dsn)
    try:
        await observer.execute(f"create table {table} (id int primary key, value int not null)")
        await observer.execute(f"insert into {table} (id, value) values (1, 10), (2, 20)")
        conns = await asyncio.gather(*(asyncpg.connect(dsn) for _ in range(anomaly.transactions)))
        try:
            lab = Interleaving(table, [Tx(f"T{n}", conn) for n, conn in enumerate(conns, 1)], observer)
            for tx in lab.txs:
                await tx.conn.execute(f"begin isolation level {level}")
            return lab.outcome(await anomaly.script(lab))
        finally:
            await asyncio.gather(*(conn.close() for conn in conns))
    finally:
        await observer.execute(f"drop table if exists {table}")
        await observer.close()


async def run_matrix(dsn: str) -> dict[str, dict[Level, Outcome]]:
    """Every anomaly at every level, one case after another (cases must not share lock waits)."""
    return {anomaly.name: {level: await run_case(dsn, anomaly, level) for level in Level} for anomaly in ANOMALIES}


def verdict(outcome: Outcome) -> str:
    return outcome.verdict


def matrix_lines(matrix: dict[str, dict[Level, Outcome]], cell: Callable[[Outcome], str] = verdict) -> list[str]:
    """A header, then one line per anomaly: its name and ``cell`` of each level in the order of ``Level``.

    By default the cell is the verdict, ``prevented`` or ``occurs``; ``Outcome.how`` shows the mechanism instead.
    """
    width = 19
    header = f"{'# anomaly':<10}" + "".join(f"{level.value:<{width}}" for level in Level)
    rows = [f"{name:<10}" + "".join(f"{cell(row[level]):<{width}}" for level in Level) for name, row in matrix.items()]
    return [line.rstrip() for line in (header, *rows)]
