"""Descriptors and properties: where an attribute lookup really goes, and a validator that shares one value.

Why it matters: ``obj.x`` asks the class first. A *data* descriptor there (``property``, anything with
``__set__``) wins over the instance's ``__dict__``; a *non-data* one (a function, ``functools.cached_property``)
loses to it. So a property is computed on every read, a cached_property once until deleted, and a descriptor
that keeps the value on itself keeps one value for every instance of the class. See notes/python.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from lab.table import Table


class PositiveOnDescriptor:
    """The footgun: the value lives on the descriptor, which is one object per class, not per instance."""

    def __init__(self) -> None:
        self.value = 0

    def __get__(self, instance: object, owner: type | None = None) -> int:
        return self.value

    def __set__(self, instance: object, value: int) -> None:
        if value <= 0:
            raise ValueError(f"must be positive, got {value}")
        self.value = value


class Positive:
    """The fix: ``__set_name__`` learns the attribute's name, and the value lives in each instance's ``__dict__``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: object, owner: type | None = None) -> int:
        value: int = vars(instance)[self.name]
        return value

    def __set__(self, instance: object, value: int) -> None:
        if value <= 0:
            raise ValueError(f"must be positive, got {value}")
        vars(instance)[self.name] = value


class PricedShared:
    price_cents = PositiveOnDescriptor()

    def __init__(self, price_cents: int) -> None:
        self.price_cents = price_cents


class Priced:
    price_cents = Positive()

    def __init__(self, price_cents: int) -> None:
        self.price_cents = price_cents


class Seats:
    """``available`` is a property (data descriptor: every read computes), ``summary`` a cached_property
    (non-data: the first read stores the result in ``__dict__``, which then shadows it)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sold = 0
        self.computations = {"available": 0, "summary": 0}

    @property
    def available(self) -> int:
        self.computations["available"] += 1
        return self.total - self.sold

    @cached_property
    def summary(self) -> str:
        self.computations["summary"] += 1
        return f"{self.total - self.sold} of {self.total} available"


def shared_prices() -> tuple[int, int]:
    first, second = PricedShared(500), PricedShared(700)
    return first.price_cents, second.price_cents


def own_prices() -> tuple[int, int]:
    first, second = Priced(500), Priced(700)
    return first.price_cents, second.price_cents


@dataclass(frozen=True)
class Reads:
    available_reads: list[int]
    summary_reads: list[str]
    computations: dict[str, int]
    summary_after_del: str


def reads_after_a_sale(reads: int = 3) -> Reads:
    """Read both ``reads`` times, sell a seat in between: the property follows, the cached value goes stale."""
    seats = Seats(10)
    available, summaries = [], []
    for _ in range(reads):
        available.append(seats.available)
        summaries.append(seats.summary)
        seats.sold += 1
    computed = dict(seats.computations)
    del seats.summary  # the cache is the instance's __dict__ entry; deleting it makes the next read compute
    return Reads(available, summaries, computed, seats.summary)


def property_without_setter() -> str:
    seats = Seats(10)
    try:
        seats.available = 3  # type: ignore[misc]
    except AttributeError as error:
        return str(error)
    return "accepted"


def report() -> list[Table]:
    reads = reads_after_a_sale()
    return [
        Table(
            "descriptors: where the value lives, and who wins the lookup",
            ("what", "result"),
            [
                ("two instances, value kept on the descriptor", f"prices {shared_prices()} (first was 500)"),
                ("two instances, value kept in each __dict__", f"prices {own_prices()}"),
                ("property read 3 times, a seat sold after each", f"{reads.available_reads}"),
                ("cached_property read 3 times, same sales", f"{reads.summary_reads}"),
                ("computations (property, cached_property)", f"{reads.computations}"),
                ("cached_property after `del`", reads.summary_after_del),
                ("assigning to a property without a setter", property_without_setter()),
            ],
        )
    ]
