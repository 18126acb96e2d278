"""Redis behaviours notes/redis.md states, shown on a private ``redis-server`` (never the system one): which keys each
eviction policy keeps past ``maxmemory`` and the OOM error a write gets under ``noeviction``; a pub/sub subscriber
that was disconnected misses what was published meanwhile (at-most-once); a Streams consumer group hands a dead
consumer's pending entries to another (``XAUTOCLAIM``); a Lua script that fails midway keeps its earlier writes,
and one that runs long answers every other client BUSY until SCRIPT KILL. Counts and replies, no timed
assertions; the scenarios are the ones ``python -m bench.redis_behaviour`` prints.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis import Redis

from bench.redis_behaviour import (
    fill_past_maxmemory,
    private_redis,
    pubsub_while_disconnected,
    scripts_are_atomic_not_transactional,
    stream_consumer_crash,
)

HOT, COLD, LATE = 100, 300, 400


@pytest.fixture(scope="module")
def redis() -> Iterator[Redis]:
    with private_redis(prefix="refstack-test-redis-") as (_server, client):
        yield client


def test_noeviction_refuses_writes_with_oom_and_keeps_every_old_key(redis: Redis) -> None:
    outcome = fill_past_maxmemory(redis, "noeviction", HOT, COLD, LATE)
    assert outcome.evicted == 0
    assert (outcome.hot, outcome.cold) == (HOT, COLD)
    assert outcome.refused > 0
    assert outcome.late + outcome.refused == LATE
    assert outcome.first_refusal.startswith("OutOfMemoryError: command not allowed when used memory > 'maxmemory'")


def test_allkeys_lru_evicts_idle_keys_and_keeps_the_ones_being_read(redis: Redis) -> None:
    outcome = fill_past_maxmemory(redis, "allkeys-lru", HOT, COLD, LATE)
    assert outcome.refused == 0
    assert outcome.evicted > 0
    # Eviction samples keys (maxmemory-samples 5), so it is approximate: a key being read loses only to bad luck.
    assert outcome.hot >= HOT * 9 // 10
    assert outcome.cold <= COLD // 2


def test_allkeys_lfu_keeps_the_keys_read_most(redis: Redis) -> None:
    outcome = fill_past_maxmemory(redis, "allkeys-lfu", HOT, COLD, LATE)
    assert outcome.refused == 0
    assert outcome.evicted > 0
    assert outcome.hot >= HOT * 9 // 10
    assert outcome.cold < COLD
    assert outcome.late < LATE


def test_volatile_ttl_evicts_the_soonest_to_expire_even_when_they_are_read(redis: Redis) -> None:
    outcome = fill_past_maxmemory(redis, "volatile-ttl", HOT, COLD, LATE)
    assert outcome.refused == 0
    assert outcome.evicted > 0
    assert outcome.hot < HOT // 2
    assert outcome.late == LATE


def test_a_disconnected_subscriber_misses_what_was_published_meanwhile(redis: Redis) -> None:
    outcome = pubsub_while_disconnected(redis, messages=10)
    assert outcome.receivers_while_away == 0
    assert outcome.received_after_return == 0


def test_a_consumer_group_hands_a_dead_consumers_pending_entries_to_another(redis: Redis) -> None:
    outcome = stream_consumer_crash(redis, entries=10)
    assert outcome.read_by_crashed == 10
    assert outcome.pending_after_crash == 10
    assert outcome.claimed_by_survivor == 10
    assert outcome.delivery_count == 2
    assert outcome.pending_after_ack == 0


def test_a_script_is_atomic_but_not_rolled_back_and_a_long_one_blocks_everyone(redis: Redis) -> None:
    outcome = scripts_are_atomic_not_transactional(redis, spin_ms=10_000)
    assert outcome.error_midway == "ResponseError"
    assert outcome.kept_after_error is True
    assert outcome.other_client_got == "ResponseError: BUSY Redis is busy running a script"
    assert outcome.spinning_script_got == "ResponseError: Script killed by user with SCRIPT KILL"
