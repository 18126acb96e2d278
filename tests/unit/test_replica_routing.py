"""The ReplicaRouter's decision table, case by case, with no database: where one read goes, when the replica
leaves rotation, and what brings it back. See notes/db_scaling.md, "ReplicaRouter".
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from app.db.replica_rotation import ReplicaRotation
from app.db.replica_routing import (
    LagLimits,
    Reason,
    ReplicaSample,
    Route,
    Target,
    decide,
    lag_seconds,
    unfit,
)
from app.observability.metrics import build_replica_metrics
from app.settings import Settings

LIMITS = LagLimits(max_bytes=1000, max_s=5.0)


@pytest.mark.parametrize(
    ("out_of_rotation", "user_lsn", "known", "replay_lsn", "expected"),
    [
        (None, None, True, 100, Route(Target.REPLICA, Reason.NO_RECENT_WRITE)),
        (None, 100, True, 100, Route(Target.REPLICA, Reason.CAUGHT_UP)),
        (None, 100, True, 250, Route(Target.REPLICA, Reason.CAUGHT_UP)),
        (None, 101, True, 100, Route(Target.PRIMARY, Reason.OWN_WRITE)),
        (None, 101, True, None, Route(Target.PRIMARY, Reason.OWN_WRITE)),
        (None, None, False, 100, Route(Target.PRIMARY, Reason.SESSION_UNKNOWN)),
        (Reason.REPLICA_DOWN, None, True, 100, Route(Target.PRIMARY, Reason.REPLICA_DOWN)),
        (Reason.REPLICA_LAGGING, 50, True, 100, Route(Target.PRIMARY, Reason.REPLICA_LAGGING)),
        (Reason.NO_REPLICA, None, True, None, Route(Target.PRIMARY, Reason.NO_REPLICA)),
    ],
)
def test_where_a_read_goes(
    out_of_rotation: Reason | None, user_lsn: int | None, known: bool, replay_lsn: int | None, expected: Route
) -> None:
    assert decide(out_of_rotation=out_of_rotation, user_lsn=user_lsn, user_lsn_known=known, replay_lsn=replay_lsn) == (
        expected
    )


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (None, Reason.REPLICA_DOWN),
        (ReplicaSample(replay_lsn=10, lag_bytes=0, lag_s=0.0), None),
        (ReplicaSample(replay_lsn=10, lag_bytes=1000, lag_s=5.0), None),  # limits are inclusive
        (ReplicaSample(replay_lsn=10, lag_bytes=1001, lag_s=0.0), Reason.REPLICA_LAGGING),
        (ReplicaSample(replay_lsn=10, lag_bytes=1, lag_s=5.1), Reason.REPLICA_LAGGING),
    ],
)
def test_when_the_replica_leaves_rotation(sample: ReplicaSample | None, expected: Reason | None) -> None:
    assert unfit(sample, LIMITS) == expected


def test_an_idle_caught_up_replica_is_not_lagging_however_old_its_last_commit() -> None:
    assert lag_seconds(lag_bytes=0, replay_age_s=3600.0, behind_for_s=0.0) == 0.0
    assert lag_seconds(lag_bytes=8, replay_age_s=3.5, behind_for_s=10.0) == 3.5
    assert lag_seconds(lag_bytes=8, replay_age_s=None, behind_for_s=10.0) == 0.0


def test_the_first_write_after_an_idle_hour_is_not_an_hour_of_lag() -> None:
    assert lag_seconds(lag_bytes=56, replay_age_s=3600.0, behind_for_s=0.0) == 0.0
    assert lag_seconds(lag_bytes=56, replay_age_s=3600.0, behind_for_s=6.0) == 6.0


def test_a_write_lsn_outlives_the_lag_tolerated_in_rotation() -> None:
    defaults = Settings()
    assert (defaults.replica_check_interval_s, defaults.replica_max_lag_s, defaults.read_your_writes_ttl_s) == (
        0.5,
        5.0,
        10.0,
    )
    with pytest.raises(ValueError, match="READ_YOUR_WRITES_TTL_S"):
        Settings(read_your_writes_ttl_s=5.0)


def in_rotation_gauge(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("db_replica_in_rotation")


def test_a_failed_read_takes_the_replica_out_at_once_and_only_a_fit_sample_brings_it_back() -> None:
    registry = CollectorRegistry()
    rotation = ReplicaRotation(has_replica=True, in_rotation=build_replica_metrics(registry).in_rotation)
    assert (rotation.out_reason, in_rotation_gauge(registry)) == (Reason.REPLICA_DOWN, 0.0)  # not checked yet

    rotation.sampled(None)
    assert (rotation.out_reason, in_rotation_gauge(registry)) == (None, 1.0)

    rotation.take_out_after_failed_read()  # one failure is enough: nothing is counted
    assert (rotation.out_reason, in_rotation_gauge(registry)) == (Reason.REPLICA_DOWN, 0.0)

    rotation.sampled(Reason.REPLICA_LAGGING)  # answering is not enough to come back: it must be fit
    assert (rotation.out_reason, in_rotation_gauge(registry)) == (Reason.REPLICA_LAGGING, 0.0)

    rotation.sampled(None)
    assert (rotation.out_reason, in_rotation_gauge(registry)) == (None, 1.0)


def test_without_a_replica_the_rotation_is_empty() -> None:
    registry = CollectorRegistry()
    rotation = ReplicaRotation(has_replica=False, in_rotation=build_replica_metrics(registry).in_rotation)
    assert (rotation.out_reason, in_rotation_gauge(registry)) == (Reason.NO_REPLICA, 0.0)
