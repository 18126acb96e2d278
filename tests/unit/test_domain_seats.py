"""The seat state machine: available → held → sold, held → available, and nothing else; the status-move builder
refuses every other move before any SQL runs. See notes/postgres.md."""

from __future__ import annotations

import itertools

import pytest

from app.db.status_moves import ForbiddenMove, move_seats
from app.domain.seats import SeatStatus, can_move

A, H, S = SeatStatus.AVAILABLE, SeatStatus.HELD, SeatStatus.SOLD


@pytest.mark.parametrize(("current", "target"), [(A, H), (H, S), (H, A)])
def test_allowed_moves(current: SeatStatus, target: SeatStatus) -> None:
    assert can_move(current, target)
    assert "UPDATE seat SET status" in str(move_seats(target, current))


@pytest.mark.parametrize(
    ("current", "target"),
    [pair for pair in itertools.product(SeatStatus, repeat=2) if pair not in {(A, H), (H, S), (H, A)}],
)
def test_every_other_move_is_refused(current: SeatStatus, target: SeatStatus) -> None:
    assert not can_move(current, target)
    with pytest.raises(ForbiddenMove, match=f"from .*{current}.* to {target}"):
        move_seats(target, current)


def test_a_sold_seat_never_comes_back() -> None:
    assert not any(can_move(S, target) for target in SeatStatus)


def test_statuses_are_the_database_values() -> None:
    assert [s.value for s in SeatStatus] == ["available", "held", "sold"]
