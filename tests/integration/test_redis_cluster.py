"""What a Redis Cluster answers a client that does not know the slot map, on six private ``redis-server`` nodes made
a cluster by the same ``redis-cli --cluster create`` the compose ``redis-cluster`` profile runs: a hash tag puts
the cache entry and its lock in one slot, the wrong primary answers MOVED, keys in two slots are CROSSSLOT, a
migrating slot answers ASK and the importing node serves the key only after ASKING, and redis-py's cluster client
follows all of it. See notes/redis.md, "Sentinel and Cluster".
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.redis_cluster import (
    ClusterNode,
    answer,
    ask_during_migration,
    followed_by_a_cluster_client,
    keyslot,
    owner,
    private_cluster,
)

ENTRY, LOCK, OTHER = "refstack:cache:{event:42}", "refstack:cache:{event:42}:lock", "refstack:cache:{event:43}"


@pytest.fixture(scope="module")
def nodes() -> Iterator[list[ClusterNode]]:
    with private_cluster() as cluster:
        yield cluster


def test_a_hash_tag_puts_an_entry_and_its_lock_in_one_slot(nodes: list[ClusterNode]) -> None:
    assert keyslot(nodes, ENTRY) == keyslot(nodes, LOCK) == keyslot(nodes, "{event:42}")
    assert keyslot(nodes, ENTRY) != keyslot(nodes, OTHER)


def test_the_wrong_primary_answers_moved_with_the_slot_and_its_owner(nodes: list[ClusterNode]) -> None:
    slot = keyslot(nodes, ENTRY)
    home = owner(nodes, slot)
    primaries = [n for n in nodes if n.client.info("replication")["role"] == "master"]
    assert len(primaries) == 3
    wrong = next(n for n in primaries if n is not home)
    assert answer(wrong.client, "GET", ENTRY) == f"MovedError: {slot} 127.0.0.1:{home.port}"
    assert answer(home.client, "GET", ENTRY) == "None"


def test_keys_in_two_slots_cannot_share_a_command(nodes: list[ClusterNode]) -> None:
    home = owner(nodes, keyslot(nodes, ENTRY))
    assert answer(home.client, "MGET", ENTRY, OTHER).startswith("ClusterCrossSlotError")
    assert answer(home.client, "MGET", ENTRY, LOCK) == "[None, None]"


def test_a_migrating_slot_answers_ask_and_the_importer_needs_asking(nodes: list[ClusterNode]) -> None:
    key = "refstack:demo:{migrating}"
    seen = ask_during_migration(nodes, key)
    assert seen["source, migrated key"].startswith("AskError: ")
    assert seen["target, no ASKING"].startswith("MovedError: ")
    assert seen["target, after ASKING"] == "b'moved-early'"
    assert seen["source, after the move"].startswith("MovedError: ")
    assert followed_by_a_cluster_client(nodes, key) == b"moved-early"
