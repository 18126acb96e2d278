"""Hold rules: valid seat requests in canonical order, expiry, and which hold states follow which.

See notes/postgres.md, "Contention".
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.db.status_moves import ForbiddenMove, move_holds
from app.domain.holds import (
    SWEEPABLE,
    HoldLimitError,
    HoldStatus,
    SeatRequestError,
    can_move,
    check_hold_quota,
    expires_at,
    seat_request,
    sources_of,
)

FINISHED = (HoldStatus.BOOKED, HoldStatus.EXPIRED, HoldStatus.RELEASED)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@given(st.lists(st.uuids(), min_size=1, max_size=10, unique=True))
def test_a_request_comes_back_sorted_and_complete(seats: list[uuid.UUID]) -> None:
    canonical = seat_request(seats, max_seats=10)
    assert list(canonical) == sorted(seats)


@given(st.lists(st.uuids(), min_size=2, max_size=5, unique=True))
def test_the_canonical_order_ignores_the_order_asked(seats: list[uuid.UUID]) -> None:
    assert seat_request(seats, max_seats=10) == seat_request(list(reversed(seats)), max_seats=10)


@pytest.mark.parametrize(
    ("seats", "message"),
    [
        ([], "at least one"),
        ([uuid.UUID(int=1)] * 2, "only once"),
        ([uuid.UUID(int=n) for n in range(4)], "at most 3"),
    ],
)
def test_bad_requests_are_refused(seats: list[uuid.UUID], message: str) -> None:
    with pytest.raises(SeatRequestError, match=message):
        seat_request(seats, max_seats=3)


def test_expiry_is_ttl_after_placing() -> None:
    assert expires_at(NOW, 300) == NOW + timedelta(minutes=5)


def test_expiry_needs_an_aware_time_and_a_positive_ttl() -> None:
    with pytest.raises(ValueError, match="timezone"):
        expires_at(NOW.replace(tzinfo=None), 300)
    with pytest.raises(ValueError, match="at least one second"):
        expires_at(NOW, 0)


def test_only_active_holds_are_swept() -> None:
    assert frozenset({HoldStatus.ACTIVE}) == SWEEPABLE
    assert HoldStatus.PAYING not in SWEEPABLE


@pytest.mark.parametrize("finished", FINISHED)
def test_finished_holds_go_nowhere(finished: HoldStatus) -> None:
    assert not any(can_move(finished, target) for target in HoldStatus)
    for target in HoldStatus:
        with pytest.raises(ForbiddenMove):
            move_holds(target, finished)


def test_a_move_built_without_a_source_starts_from_every_allowed_one() -> None:
    assert sources_of(HoldStatus.PAYING) == {HoldStatus.ACTIVE, HoldStatus.PAYING}
    assert sources_of(HoldStatus.EXPIRED) == SWEEPABLE
    with pytest.raises(ForbiddenMove):
        move_holds(HoldStatus.ACTIVE, HoldStatus.ACTIVE)  # nothing becomes active again but a paying hold


def test_a_failed_charge_returns_the_hold_to_active_but_an_expired_hold_stays_expired() -> None:
    assert can_move(HoldStatus.PAYING, HoldStatus.ACTIVE)
    assert not can_move(HoldStatus.EXPIRED, HoldStatus.ACTIVE)
    assert not can_move(HoldStatus.PAYING, HoldStatus.EXPIRED)


@given(st.integers(min_value=1, max_value=50), st.integers(min_value=0, max_value=60))
def test_hold_quota_admits_exactly_below_the_limit(limit: int, active: int) -> None:
    """notes/security.md, "Resource caps per user": one more hold while active < limit, never at or above it."""
    if active < limit:
        check_hold_quota(active, limit=limit)
    else:
        with pytest.raises(HoldLimitError) as refused:
            check_hold_quota(active, limit=limit)
        assert (refused.value.active, refused.value.limit) == (active, limit)
