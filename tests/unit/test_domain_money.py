"""Money is whole, non-negative cents that fit PostgreSQL's integer. See notes/rest_design.md."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.money import MAX_CENTS, InvalidAmountError, cents, total_cents


@pytest.mark.parametrize("value", [0, 1, 1999, MAX_CENTS])
def test_valid_amounts_pass_through(value: int) -> None:
    assert cents(value) == value


@pytest.mark.parametrize("value", [-1, MAX_CENTS + 1, 19.99, True, "100"])
def test_invalid_amounts_are_refused(value: object) -> None:
    with pytest.raises(InvalidAmountError):
        cents(value)  # type: ignore[arg-type]


@given(st.integers(0, 10**6), st.integers(1, 100))
def test_totals_are_exact(price: int, quantity: int) -> None:
    assert total_cents(price, quantity) == price * quantity


def test_ten_cents_three_times_is_thirty_cents_exactly() -> None:
    assert total_cents(10, 3) == 30  # with floats, 0.1 * 3 == 0.30000000000000004


@pytest.mark.parametrize("quantity", [0, -1, True, 1.0])
def test_quantities_are_positive_integers(quantity: object) -> None:
    with pytest.raises(InvalidAmountError, match="quantity"):
        total_cents(100, quantity)  # type: ignore[arg-type]


def test_an_overflowing_total_is_refused() -> None:
    with pytest.raises(InvalidAmountError):
        total_cents(MAX_CENTS, 2)
