"""Hermitage on the private PostgreSQL 15 primary: ten anomalies at three isolation levels, one test per cell.

Each test plays the anomaly's script (tests/isolation/hermitage.py) on real connections and asserts the whole
outcome: whether the anomaly happened, whether a statement waited on a row lock, and which SQLSTATE ended a
transaction. A prevention with neither a wait nor an abort is the MVCC snapshot at work.
See notes/postgres.md ("Isolation levels, proved").
"""

from __future__ import annotations

import pytest

from stack.native.stack import NativeStack
from tests.isolation.hermitage import ANOMALIES, Anomaly, Level, Outcome, run_case

RC, RR, SER = Level.READ_COMMITTED, Level.REPEATABLE_READ, Level.SERIALIZABLE
SNAPSHOT = Outcome(occurs=False, blocked=False, sqlstate=None)
LOCK_THEN_ORDER = Outcome(occurs=False, blocked=True, sqlstate=None)  # the waiter runs after the holder, on its result
LOCK_THEN_ABORT = Outcome(occurs=False, blocked=True, sqlstate="40001")  # the waiter cannot build on a newer version
ABORT = Outcome(occurs=False, blocked=False, sqlstate="40001")
OCCURS = Outcome(occurs=True, blocked=False, sqlstate=None)
OCCURS_AFTER_WAIT = Outcome(occurs=True, blocked=True, sqlstate=None)

EXPECTED: dict[str, dict[Level, Outcome]] = {
    "G0": {RC: LOCK_THEN_ORDER, RR: LOCK_THEN_ABORT, SER: LOCK_THEN_ABORT},
    "G1a": {RC: SNAPSHOT, RR: SNAPSHOT, SER: SNAPSHOT},
    "G1b": {RC: SNAPSHOT, RR: SNAPSHOT, SER: SNAPSHOT},
    # Under SERIALIZABLE each read the other's item before it changed: a cycle of rw-dependencies, so one aborts.
    "G1c": {RC: SNAPSHOT, RR: SNAPSHOT, SER: ABORT},
    "OTV": {RC: LOCK_THEN_ORDER, RR: LOCK_THEN_ABORT, SER: LOCK_THEN_ABORT},
    "PMP": {RC: OCCURS, RR: SNAPSHOT, SER: SNAPSHOT},
    "P4": {RC: OCCURS_AFTER_WAIT, RR: LOCK_THEN_ABORT, SER: LOCK_THEN_ABORT},
    "G-single": {RC: OCCURS, RR: SNAPSHOT, SER: SNAPSHOT},
    "G2-item": {RC: OCCURS, RR: OCCURS, SER: ABORT},
    "G2": {RC: OCCURS, RR: OCCURS, SER: ABORT},
}
CASES = [
    pytest.param(anomaly, level, id=f"{anomaly.name}-{level.name.lower()}") for anomaly in ANOMALIES for level in Level
]


def test_the_expected_table_covers_every_case_once() -> None:
    assert sorted(EXPECTED) == sorted(anomaly.name for anomaly in ANOMALIES)
    assert all(set(row) == set(Level) for row in EXPECTED.values())


@pytest.mark.parametrize(("anomaly", "level"), CASES)
async def test_postgres_isolation(stack: NativeStack, anomaly: Anomaly, level: Level) -> None:
    outcome = await run_case(stack.primary.direct_url, anomaly, level)
    assert outcome == EXPECTED[anomaly.name][level], f"{anomaly.name} ({anomaly.title}) under {level}: {outcome.how}"
