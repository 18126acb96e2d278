"""Reference counting frees at once; only the cyclic collector frees a cycle; a weak reference means no cycle.

Why this matters to a server: an object in a reference cycle (a parent and child that point at each other, an
exception holding the frame that holds it) lives until the next collection of its generation, not until its last
name goes, so its memory and whatever it owns (a socket, a file) outlive the request. Finalizer order follows the
references when refcounting frees a chain, and is unspecified inside a collected cycle. See notes/python.md.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from lab.table import Table


class Node:
    """A named object whose freeing is recorded (by ``weakref.finalize``, which keeps nothing alive)."""

    def __init__(self, name: str, freed: list[str]) -> None:
        self.name = name
        self.partner: Node | Child | None = None
        weakref.finalize(self, freed.append, name)


class Child:
    """Points back at its parent weakly, so parent and child make no cycle."""

    def __init__(self, parent: Node, freed: list[str]) -> None:
        self.parent = weakref.ref(parent)
        weakref.finalize(self, freed.append, "child")


class Finalized:
    """Records, in ``__del__``, its own name and whether the object it points at was still whole then."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log
        self.next: Finalized | None = None

    def __del__(self) -> None:
        seen = self.next.name if self.next is not None else "nothing"
        self.log.append(f"{self.name} (sees {seen})")


@dataclass(frozen=True)
class Freeing:
    case: str
    freed_when_names_dropped: list[str]
    freed_by_gc_collect: list[str]


@contextmanager
def automatic_collection_off() -> Iterator[None]:
    """Only explicit ``gc.collect()`` runs inside, so what refcounting alone frees is seen; restored on exit."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def lone_object() -> Freeing:
    freed: list[str] = []
    with automatic_collection_off():
        node = Node("lone", freed)
        del node
        at_drop = list(freed)
        gc.collect()
    return Freeing("no cycle", at_drop, freed[len(at_drop) :])


def strong_cycle() -> Freeing:
    freed: list[str] = []
    with automatic_collection_off():
        parent, child = Node("parent", freed), Node("child", freed)
        parent.partner, child.partner = child, parent
        del parent, child
        at_drop = list(freed)
        gc.collect()
    return Freeing("parent <-> child", at_drop, sorted(freed[len(at_drop) :]))


def weak_back_reference() -> Freeing:
    """The fix: the child's way back is a ``weakref.ref``; refcounting frees both the moment the parent goes."""
    freed: list[str] = []
    with automatic_collection_off():
        parent = Node("parent", freed)
        parent.partner = Child(parent, freed)
        del parent
        at_drop = list(freed)
        gc.collect()
    return Freeing("parent -> child, child ~> parent (weak)", at_drop, freed[len(at_drop) :])


def chain_finalizer_order() -> list[str]:
    """head -> middle -> tail, freed by refcounting: each ``__del__`` runs before what it points at goes."""
    log: list[str] = []
    with automatic_collection_off():
        head, middle, tail = Finalized("head", log), Finalized("middle", log), Finalized("tail", log)
        head.next, middle.next = middle, tail
        del middle, tail
        del head
    return log


def cycle_finalizer_order() -> tuple[list[str], list[str]]:
    """a -> b -> c -> a, freed by the collector: every ``__del__`` runs (PEP 442) before any object is torn down,
    so each still sees its neighbour, but the order among them is the collector's, not the program's. Returns
    what ran when the names were dropped, then what ran in ``gc.collect()``."""
    log: list[str] = []
    with automatic_collection_off():
        a, b, c = Finalized("a", log), Finalized("b", log), Finalized("c", log)
        a.next, b.next, c.next = b, c, a
        del a, b, c
        at_drop = list(log)
        gc.collect()
    return at_drop, log[len(at_drop) :]


def report() -> list[Table]:
    freeing = Table(
        f"what frees an object (automatic collection off; thresholds {gc.get_threshold()})",
        ("objects", "freed when names dropped", "freed by gc.collect()"),
        [
            (f.case, ", ".join(f.freed_when_names_dropped) or "-", ", ".join(f.freed_by_gc_collect) or "-")
            for f in (lone_object(), strong_cycle(), weak_back_reference())
        ],
    )
    order = Table(
        "finalizer (__del__) order",
        ("freed by", "order"),
        [
            ("refcounting, chain head->middle->tail", " then ".join(chain_finalizer_order())),
            ("gc.collect(), cycle a->b->c->a", " then ".join(cycle_finalizer_order()[1])),
        ],
    )
    return [freeing, order]
