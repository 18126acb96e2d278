"""Memory: what ``__slots__`` saves, identities that come from caches (small ints, interned strings), and why a
process that freed almost everything still holds its arenas.

Why it matters: millions of small records (rows, events) cost their per-object overhead millions of times; an
``is`` that passes in a test on 7 fails in production on 1000; and a worker's RSS that never falls after a burst
is pymalloc keeping any arena that still has one live block, not necessarily a leak. tracemalloc counts what
Python allocates; ``sys._debugmallocstats`` counts arenas. See notes/python.md.
"""

from __future__ import annotations

import gc
import os
import re
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

from lab.table import Cell, Table

ARENA_LINE = re.compile(r"# arenas allocated current\s*=\s*([\d,]+)")


class PointWithDict:
    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y


class PointWithSlots:
    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y


@dataclass(frozen=True)
class Footprint:
    cls: str
    getsizeof: int
    getsizeof_with_dict: int
    traced_bytes_each: float


def traced_bytes_each(cls: type[PointWithDict] | type[PointWithSlots], count: int) -> float:
    """tracemalloc's count of the bytes ``count`` instances take (the list that holds them subtracted)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        points = [cls(0, 0) for _ in range(count)]
        grown = tracemalloc.get_traced_memory()[0] - before - sys.getsizeof(points)
    finally:
        tracemalloc.stop()
    return grown / count


def footprint(cls: type[PointWithDict] | type[PointWithSlots], count: int = 10_000) -> Footprint:
    """``sys.getsizeof`` of a fresh instance, then with its ``__dict__`` (asking for it builds it on 3.11, whose
    instances keep their values inline until someone asks), and tracemalloc's bytes per instance in bulk."""
    point = cls(0, 0)
    alone = sys.getsizeof(point)
    with_dict = alone + (sys.getsizeof(point.__dict__) if hasattr(point, "__dict__") else 0)
    return Footprint(cls.__name__, alone, with_dict, traced_bytes_each(cls, count))


def slots_refuse_new_attributes() -> str:
    point = PointWithSlots(0, 0)
    try:
        point.z = 1  # type: ignore[attr-defined]
    except AttributeError as error:
        return str(error)
    return "accepted"


def cached_int_range(low: int = -10, high: int = 300) -> tuple[int, int]:
    """The ints for which two separately computed equal values are one object: the small-int cache."""
    cached = [n for n in range(low, high + 1) if int(str(n)) is int(str(n))]
    return min(cached), max(cached)


def same_quantity_buggy(a: int, b: int) -> bool:
    """The ``is`` bug: passes for quantities up to 256 (cached ints), fails above."""
    return a is b


def same_quantity(a: int, b: int) -> bool:
    return a == b


@dataclass(frozen=True)
class Interning:
    equal: bool
    identical: bool
    identical_after_intern: bool


def interning(word: str = "refstack") -> Interning:
    """A string built at run time is a new object; ``sys.intern`` maps equal strings to one object (dict keys
    compared by identity first, attribute names, parsed identifiers are interned this way)."""
    built = "".join([word[:3], word[3:]])
    return Interning(built == word, built is word, sys.intern(built) is sys.intern(word))


def arenas_allocated() -> int:
    """pymalloc's current arena count, read from ``sys._debugmallocstats``, which writes to file descriptor 2."""
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        found = ARENA_LINE.search(sink.read().decode())
    if found is None:
        raise RuntimeError("sys._debugmallocstats printed no arena count (is pymalloc disabled?)")
    return int(found.group(1).replace(",", ""))


@dataclass(frozen=True)
class Phases:
    """One measure taken before the objects exist, with all of them alive, and after the free."""

    before: int
    at_peak: int
    after_free: int


def allocate_and_free(count: int, keep_every: int | None, measure: Callable[[], int]) -> Phases:
    """Allocate ``count`` small objects, then free them all, or all but every ``keep_every``-th one."""
    gc.collect()
    before = measure()
    points = [PointWithSlots(0, 0) for _ in range(count)]
    at_peak = measure()
    survivors = [] if keep_every is None else points[::keep_every]
    del points
    gc.collect()
    after_free = measure()
    del survivors
    return Phases(before, at_peak, after_free)


def traced_bytes() -> int:
    return tracemalloc.get_traced_memory()[0]


def traced_phases(count: int, keep_every: int | None) -> Phases:
    """What tracemalloc sees: the bytes Python asked for, which fall with the objects."""
    tracemalloc.start()
    try:
        return allocate_and_free(count, keep_every, traced_bytes)
    finally:
        tracemalloc.stop()


def arena_phases(count: int, keep_every: int | None) -> Phases:
    """What pymalloc holds (tracemalloc off: while it traces, pymalloc's statistics are not printed). Survivors
    scattered through every 16 KiB pool keep every pool, so every 1 MiB arena, in use."""
    return allocate_and_free(count, keep_every, arenas_allocated)


def report(count: int = 200_000) -> list[Table]:
    footprints = Table(
        "__slots__: bytes per instance of a two-field class",
        ("class", "getsizeof", "getsizeof + __dict__", "tracemalloc per instance (10,000)"),
        [
            (f.cls, f.getsizeof, f.getsizeof_with_dict, f.traced_bytes_each)
            for f in (footprint(PointWithDict), footprint(PointWithSlots))
        ],
    )
    low, high = cached_int_range()
    interned = interning()
    identity = Table(
        "identities that come from caches",
        ("what", "result"),
        [
            ("ints that are one object when computed twice", f"{low} .. {high}"),
            ("same_quantity_buggy(256, 256) (uses `is`)", str(same_quantity_buggy(int("256"), int("256")))),
            ("same_quantity_buggy(257, 257) (uses `is`)", str(same_quantity_buggy(int("257"), int("257")))),
            ("same_quantity(257, 257) (uses `==`)", str(same_quantity(int("257"), int("257")))),
            ("run-time string == literal / is literal", f"{interned.equal} / {interned.identical}"),
            ("after sys.intern on both: is", str(interned.identical_after_intern)),
            ("slotted instance given a new attribute", slots_refuse_new_attributes()),
        ],
    )
    rows: list[tuple[Cell, ...]] = []
    for keep_every in (None, 64):
        traced, arenas = traced_phases(count, keep_every), arena_phases(count, keep_every)
        rows.append(
            (
                "none" if keep_every is None else f"1 in {keep_every}",
                (traced.at_peak - traced.before) // 1024,
                (traced.after_free - traced.before) // 1024,
                arenas.before,
                arenas.at_peak,
                arenas.after_free,
            )
        )
    arenas_table = Table(
        f"{count:,} small objects allocated, then freed but for the survivors: tracemalloc vs pymalloc's arenas",
        ("survivors kept", "traced KiB at peak", "traced KiB after", "arenas before", "arenas at peak", "arenas after"),
        rows,
    )
    return [footprints, identity, arenas_table]
