"""The consistent-hash ring's promises, as properties over random shard names and random user ids, with no
database: an owner is deterministic; adding a third shard to two moves about a third of the keys, all of them to the
new shard; removing a shard moves only its own keys; shares are balanced; modulo, for contrast, moves most keys.
See notes/db_scaling.md, "Sharding".
"""

from __future__ import annotations

import random
import uuid
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.sharding.ring import DEFAULT_VNODES, HashRing, moves, stable_hash

KEYS = 3000
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=10)
seeds = st.integers(min_value=0, max_value=2**32)


def user_ids(seed: int, count: int = KEYS) -> list[str]:
    """``count`` random user ids (UUIDs, as the audit log's shard key is) from ``seed``."""
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def test_the_hash_is_stable_across_processes() -> None:
    """Pinned values: BLAKE2b does not depend on PYTHONHASHSEED, so every worker routes a user the same way."""
    assert stable_hash("user-1") == 0x9AAC_5A86_21EA_E188
    ring = HashRing(["shard_0", "shard_1"])
    assert [ring.owner(key) for key in ("a", "b", "c", "d")] == ["shard_0", "shard_1", "shard_1", "shard_0"]


@given(st.lists(names, min_size=1, max_size=5, unique=True), seeds)
@settings(max_examples=25, deadline=None)
def test_the_owner_is_deterministic_and_on_the_ring(nodes: list[str], seed: int) -> None:
    first, second = HashRing(nodes), HashRing(reversed(nodes))
    for key in user_ids(seed, 200):
        assert first.owner(key) == second.owner(key)
        assert first.owner(key) in nodes


@given(st.lists(names, min_size=3, max_size=3, unique=True), seeds)
@settings(max_examples=25, deadline=None)
def test_adding_a_third_shard_moves_about_a_third_of_the_keys_all_to_it(nodes: list[str], seed: int) -> None:
    old, new = nodes[:2], nodes[2]
    before = HashRing(old)
    after = before.with_node(new)
    keys = user_ids(seed)
    moved = moves(keys, before, after)
    assert 0.2 < len(moved) / len(keys) < 0.47
    assert {move.target for move in moved} <= {new}
    assert {move.source for move in moved} <= set(old)


@given(st.lists(names, min_size=3, max_size=5, unique=True), seeds, st.data())
@settings(max_examples=25, deadline=None)
def test_removing_a_shard_moves_only_its_own_keys(nodes: list[str], seed: int, data: st.DataObject) -> None:
    gone = data.draw(st.sampled_from(nodes))
    before = HashRing(nodes)
    after = before.without_node(gone)
    keys = user_ids(seed)
    moved = moves(keys, before, after)
    assert {move.source for move in moved} <= {gone}
    assert len(moved) == sum(1 for key in keys if before.owner(key) == gone)


@given(st.lists(names, min_size=2, max_size=6, unique=True))
@settings(max_examples=25, deadline=None)
def test_shares_are_balanced_within_a_quarter_of_fair(nodes: list[str]) -> None:
    """With 512 points per shard a share's relative spread is about 1/sqrt(512) ≈ 4.4 %: 25 % is over 5 sigma."""
    shares = HashRing(nodes).shares()
    assert sum(shares.values()) == pytest.approx(1.0)
    fair = 1 / len(nodes)
    for share in shares.values():
        assert 0.75 * fair < share < 1.25 * fair


def test_keys_follow_the_shares() -> None:
    """Counting real keys agrees with the arc lengths (the shares are what routing does, not a separate model)."""
    ring = HashRing(["shard_0", "shard_1", "shard_2"])
    counts = Counter(ring.owner(key) for key in user_ids(7, 30_000))
    for node, share in ring.shares().items():
        assert counts[node] / 30_000 == pytest.approx(share, abs=0.015)


def test_few_virtual_nodes_are_unbalanced_many_are_fair() -> None:
    """Why virtual nodes: with one point per shard, arcs are as uneven as random gaps (here over 100:1)."""
    nodes = [f"shard_{index}" for index in range(4)]
    one_point, many_points = HashRing(nodes, vnodes=1).shares(), HashRing(nodes).shares()
    assert max(one_point.values()) / min(one_point.values()) > 2
    assert max(many_points.values()) / min(many_points.values()) < 1.25
    assert DEFAULT_VNODES >= 300


@given(seeds)
@settings(max_examples=10, deadline=None)
def test_modulo_moves_most_keys_where_the_ring_moves_a_third(seed: int) -> None:
    """``hash % 2`` → ``hash % 3`` keeps a key only when both remainders agree: one key in three stays."""
    keys = user_ids(seed)
    moved_by_modulo = sum(1 for key in keys if stable_hash(key) % 2 != stable_hash(key) % 3)
    assert moved_by_modulo / len(keys) > 0.6


def test_an_empty_ring_owns_nothing() -> None:
    with pytest.raises(LookupError):
        HashRing().owner("anyone")
    with pytest.raises(ValueError, match="already"):
        HashRing(["a"]).with_node("a")
    with pytest.raises(ValueError, match="not on the ring"):
        HashRing(["a"]).without_node("b")
