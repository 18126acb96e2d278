"""A consistent-hash ring with virtual nodes: which shard owns a key, and which keys move when shards change.

Why a ring and not ``hash(key) % N``: with modulo, going from N to N+1 shards changes the owner of about N/(N+1)
of all keys (2 → 3 moves two thirds), so resharding means moving nearly everything. On a ring each shard owns the
arcs that end at its points; a new shard takes over only the arcs its own points cut, about 1/(N+1) of the keys,
all of them moving *to* it, and removing a shard hands only its own keys to its neighbours. Each shard is placed at
many points (virtual nodes) so its arcs add up to a fair share: with ``v`` points the relative spread of a share is
about 1/sqrt(v). The hash is BLAKE2b, stable across processes and machines; Python's ``hash()`` is salted per
process and would route the same user to different shards in two workers. Pure: no IO. See notes/db_scaling.md,
"Sharding".
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DEFAULT_VNODES = 512
RING_SIZE = 1 << 64


def stable_hash(value: str) -> int:
    """A 64-bit position on the ring, the same in every process and on every machine."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class Move:
    """One key whose owner differs between two rings."""

    key: str
    source: str
    target: str


class HashRing:
    """An immutable ring: ``with_node``/``without_node`` return a new ring, so the old and the new one can both be
    consulted while data moves between them."""

    def __init__(self, nodes: Iterable[str] = (), *, vnodes: int = DEFAULT_VNODES) -> None:
        if vnodes < 1:
            raise ValueError("vnodes must be at least 1")
        self.vnodes = vnodes
        self.nodes: frozenset[str] = frozenset(nodes)
        # (position, node): ties (astronomically rare with 64 bits) are broken by name, so every process agrees
        self._points = sorted((stable_hash(f"{node}#{index}"), node) for node in self.nodes for index in range(vnodes))
        self._positions = [position for position, _ in self._points]

    def __repr__(self) -> str:
        return f"HashRing({sorted(self.nodes)!r}, vnodes={self.vnodes})"

    def with_node(self, node: str) -> HashRing:
        if node in self.nodes:
            raise ValueError(f"{node!r} is already on the ring")
        return HashRing(self.nodes | {node}, vnodes=self.vnodes)

    def without_node(self, node: str) -> HashRing:
        if node not in self.nodes:
            raise ValueError(f"{node!r} is not on the ring")
        return HashRing(self.nodes - {node}, vnodes=self.vnodes)

    def owner(self, key: str) -> str:
        """The node at the first point clockwise from the key's position (wrapping past the top)."""
        if not self._points:
            raise LookupError("the ring has no nodes")
        index = bisect.bisect_right(self._positions, stable_hash(key)) % len(self._points)
        return self._points[index][1]

    def shares(self) -> Mapping[str, float]:
        """The fraction of the hash space each node owns (the length of the arcs ending at its points)."""
        owned = dict.fromkeys(self.nodes, 0)
        previous = self._points[-1][0] - RING_SIZE if self._points else 0
        for position, node in self._points:
            owned[node] += position - previous
            previous = position
        return {node: length / RING_SIZE for node, length in owned.items()}


def moves(keys: Iterable[str], before: HashRing, after: HashRing) -> list[Move]:
    """The keys whose owner changes from ``before`` to ``after``: exactly the data a resharding must copy."""
    changed = []
    for key in keys:
        source, target = before.owner(key), after.owner(key)
        if source != target:
            changed.append(Move(key, source, target))
    return changed
