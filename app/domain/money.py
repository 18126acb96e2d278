"""Money is an integer number of cents: never a float, never negative.

Why integers: binary floats cannot represent 0.10 exactly, so sums drift (0.1 + 0.2 != 0.3) and a total computed
twice may differ by a cent. Integer cents add and multiply exactly, the database stores them in ``integer``
columns with a ``>= 0`` check, and the API speaks them as JSON integers (``price_cents``, ``amount_cents``).
See notes/rest_design.md, "Representations".
"""

from __future__ import annotations

MAX_CENTS = 2**31 - 1  # PostgreSQL ``integer``


class InvalidAmountError(ValueError):
    """An amount that is not a whole, non-negative number of cents within the column's range."""


def cents(value: int) -> int:
    """``value`` if it is a valid amount in cents; rejects floats, bools, negatives and overflow."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAmountError(f"an amount is an integer number of cents, not {type(value).__name__}")
    if not 0 <= value <= MAX_CENTS:
        raise InvalidAmountError(f"an amount must be between 0 and {MAX_CENTS} cents, got {value}")
    return value


def total_cents(unit_price_cents: int, quantity: int) -> int:
    """The price of ``quantity`` seats at ``unit_price_cents`` each, exactly."""
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise InvalidAmountError(f"a quantity is a positive integer, got {quantity!r}")
    return cents(cents(unit_price_cents) * quantity)
