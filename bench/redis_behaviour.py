"""What Redis does, not how fast: which keys an eviction policy keeps, what a write gets when nothing may be evicted,
what a disconnected pub/sub subscriber misses, what a Streams consumer group gives back after a crash, and what a
Lua script's atomicity does and does not give.

Why a bench module and a test both: these are behaviours, so tests/integration/test_redis_behaviour.py asserts
them against a private ``redis-server`` (counts, no clocks), and this module prints the same scenarios as tables
for notes/redis.md ("Eviction, measured", "Pub/sub or Streams", "Lua scripts"). Each scenario runs on a server
started here on a free port (never the system Redis) and stopped by its PID. Every loop is bounded.

Run: ``.venv/bin/python -m bench.redis_behaviour``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from redis import Redis
from redis.client import PubSub
from redis.exceptions import ResponseError

from lab.table import Table
from stack.native.brokers import RedisServer
from stack.native.layout import Layout, free_port

POLICIES = ("allkeys-lru", "allkeys-lfu", "volatile-ttl", "noeviction")
VALUE = b"x" * 1024
IDLE_POLL_S = 5.0  # the LRU clock ticks once a second; a loaded machine may need a few


@contextmanager
def private_redis(prefix: str = "refstack-redis-") -> Iterator[tuple[RedisServer, Redis]]:
    """A ``redis-server`` of our own on a free loopback port, its client, and its removal (stopped by PID)."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    server = RedisServer(Layout(base, {"redis": free_port()}))
    try:
        server.start()
        client = Redis(host="127.0.0.1", port=server.port, socket_timeout=30, socket_connect_timeout=5)
        try:
            yield server, client
        finally:
            client.close()
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class EvictionOutcome:
    """After a fill past ``maxmemory``: how many of each group of keys survived, and how many writes were refused."""

    policy: str
    hot: int  # read over and over, shortest TTLs
    cold: int  # written first, never read again, middle TTLs
    late: int  # written past the limit, longest TTLs
    refused: int
    evicted: int
    first_refusal: str


def wait_idle(client: Redis, key: str, seconds: int) -> None:
    """Poll until ``OBJECT IDLETIME key`` reaches ``seconds`` (the LRU clock must have moved past the fill)."""
    deadline = time.monotonic() + IDLE_POLL_S
    while int(client.object("idletime", key) or 0) < seconds:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{key} idle for less than {seconds} s after {IDLE_POLL_S} s")
        time.sleep(0.05)  # sleep-ok: the poll interval of a deadline-bound wait


def fill_past_maxmemory(
    client: Redis, policy: str, hot: int = 100, cold: int = 300, late: int = 400
) -> EvictionOutcome:
    """``hot + cold`` keys fit; ``maxmemory`` is then set to leave room for about half of the ``late`` keys.

    Every key has a TTL (so ``volatile-*`` policies may evict any of them) growing with its number: the hot keys
    expire soonest. The hot keys are read ten times after the cold ones have been idle for a second, and read
    again after every tenth late write, so LRU sees them as recent and LFU as frequent.
    """
    client.flushall()
    client.config_set("maxmemory", 0)
    client.config_set("maxmemory-policy", policy)
    names = [f"hot:{i}" for i in range(hot)] + [f"cold:{i}" for i in range(cold)]
    with client.pipeline(transaction=False) as pipe:
        for number, name in enumerate(names):
            pipe.set(name, VALUE, ex=3600 + number)
        pipe.execute()
    if "lfu" not in policy:  # LFU keeps a use counter where LRU keeps the idle time
        wait_idle(client, "cold:0", 1)
    for _ in range(10):
        client.mget([f"hot:{i}" for i in range(hot)])
    before = int(client.info("stats")["evicted_keys"])  # before the limit: CONFIG SET itself may evict
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used + late // 2 * (len(VALUE) + 100))
    refused, first_refusal = 0, ""
    for i in range(late):
        try:
            client.set(f"late:{i}", VALUE, ex=3600 + len(names) + i)
        except ResponseError as error:
            refused += 1
            first_refusal = first_refusal or f"{type(error).__name__}: {error}"
        if i % 10 == 0:
            client.mget([f"hot:{h}" for h in range(hot)])
    evicted = int(client.info("stats")["evicted_keys"]) - before
    client.config_set("maxmemory", 0)

    def alive(prefix: str, count: int) -> int:
        return int(client.exists(*[f"{prefix}:{i}" for i in range(count)]))

    return EvictionOutcome(
        policy, alive("hot", hot), alive("cold", cold), alive("late", late), refused, evicted, first_refusal
    )


def next_message(subscriber: PubSub, timeout_s: float) -> bytes | None:
    """The next published payload within ``timeout_s`` (subscribe confirmations skipped), or None."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        message = subscriber.get_message(ignore_subscribe_messages=True, timeout=left)
        if message is not None:
            return bytes(message["data"])
    return None


@dataclass(frozen=True)
class PubSubOutcome:
    published_while_away: int
    receivers_while_away: int  # what PUBLISH answered: how many subscribers got each message
    received_after_return: int


def pubsub_while_disconnected(client: Redis, messages: int = 10) -> PubSubOutcome:
    """A subscriber gets one message, disconnects, ``messages`` are published, it subscribes again: what it gets."""
    channel = "refstack:demo:invalidate"
    subscriber = client.pubsub()  # type: ignore[no-untyped-call]
    subscriber.subscribe(channel)
    client.publish(channel, "before")
    if next_message(subscriber, 5.0) != b"before":
        raise RuntimeError("the connected subscriber did not get the first message")
    subscriber.close()
    receivers = sum(int(client.publish(channel, f"away-{i}")) for i in range(messages))
    returned = client.pubsub()  # type: ignore[no-untyped-call]
    returned.subscribe(channel)
    client.publish(channel, "after")
    got: list[bytes] = []
    while (payload := next_message(returned, 5.0)) is not None and len(got) <= messages:
        got.append(payload)
        if payload == b"after":
            break
    returned.close()
    if got[-1:] != [b"after"]:
        raise RuntimeError(f"the returned subscriber never got the marker published after its return: {got}")
    return PubSubOutcome(messages, receivers, len(got) - 1)


@dataclass(frozen=True)
class StreamOutcome:
    added: int
    read_by_crashed: int
    pending_after_crash: int
    claimed_by_survivor: int
    delivery_count: int  # times the first claimed entry has been delivered
    pending_after_ack: int


def stream_consumer_crash(client: Redis, entries: int = 10) -> StreamOutcome:
    """Consumer ``a`` reads every entry and dies before ``XACK``; consumer ``b`` takes them over with ``XAUTOCLAIM``."""
    stream, group = "refstack:demo:events", "reconciler"
    client.delete(stream)
    for i in range(entries):
        client.xadd(stream, {"n": i})
    client.xgroup_create(stream, group, id="0")
    read = cast(list[tuple[bytes, list[object]]], client.xreadgroup(group, "a", {stream: ">"}))  # RESP2 shape
    read_by_crashed = len(read[0][1]) if read else 0
    pending = int(client.xpending(stream, group)["pending"])
    _next, claimed, _deleted = client.xautoclaim(stream, group, "b", min_idle_time=0, start_id="0-0", count=entries)
    detail = client.xpending_range(stream, group, min="-", max="+", count=1)
    client.xack(stream, group, *[entry_id for entry_id, _fields in claimed])
    after_ack = int(client.xpending(stream, group)["pending"])
    return StreamOutcome(entries, read_by_crashed, pending, len(claimed), int(detail[0]["times_delivered"]), after_ack)


# Writes a key, then calls a command that does not exist: Redis stops the script there and keeps the first write.
WRITE_THEN_FAIL = "redis.call('SET', KEYS[1], 'written'); return redis.call('NO-SUCH-COMMAND')"
# Spins for ARGV[1] ms of server time without writing, so SCRIPT KILL may stop it.
SPIN = """
local t = redis.call('TIME')
local stop = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[1])
repeat t = redis.call('TIME') until t[1] * 1000 + math.floor(t[2] / 1000) >= stop
return 'finished'
"""


@dataclass(frozen=True)
class ScriptOutcome:
    error_midway: str
    kept_after_error: bool  # no rollback: the write before the error stayed
    other_client_got: str  # what another client's PING got while a script ran past busy-reply-threshold
    spinning_script_got: str


def scripts_are_atomic_not_transactional(client: Redis, spin_ms: int = 10_000) -> ScriptOutcome:
    """A script that fails midway keeps its earlier writes; a long script makes every other client wait (BUSY)."""
    client.delete("refstack:demo:script")
    try:
        client.eval(WRITE_THEN_FAIL, 1, "refstack:demo:script")
        error_midway = "no error"
    except ResponseError as error:
        error_midway = type(error).__name__
    kept = client.get("refstack:demo:script") == b"written"
    client.config_set("busy-reply-threshold", 100)
    spinner = Redis(connection_pool=client.connection_pool)
    outcome: list[str] = []

    def spin() -> None:
        try:
            outcome.append(str(spinner.eval(SPIN, 0, spin_ms)))
        except ResponseError as error:
            outcome.append(f"{type(error).__name__}: {str(error).split('...')[0]}")

    thread = threading.Thread(target=spin)
    thread.start()
    other = Redis(connection_pool=client.connection_pool)
    deadline = time.monotonic() + spin_ms / 1000
    other_got = "answered"
    while time.monotonic() < deadline:
        try:
            other.ping()
        except ResponseError as error:  # BUSY Redis is busy running a script...
            other_got = f"{type(error).__name__}: {str(error).split('.')[0]}"
            break
        time.sleep(0.01)  # sleep-ok: the poll interval of a deadline-bound wait
    other.script_kill()
    thread.join(timeout=spin_ms / 1000 + 5)
    client.config_set("busy-reply-threshold", 5000)
    return ScriptOutcome(error_midway, kept, other_got, outcome[0] if outcome else "still running")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.parse_args()
    with private_redis() as (server, client):
        version = client.info("server")["redis_version"]
        outcomes = [fill_past_maxmemory(client, policy) for policy in POLICIES]
        pubsub = pubsub_while_disconnected(client)
        stream = stream_consumer_crash(client)
        script = scripts_are_atomic_not_transactional(client)
    print(
        Table(
            f"eviction on redis-server {version} (port {server.port}): 100 hot + 300 cold keys of 1 KB fit, "
            "then 400 late writes with room for about 200",
            ("policy", "hot kept /100", "cold kept /300", "late kept /400", "writes refused", "evicted"),
            [(o.policy, o.hot, o.cold, o.late, o.refused, o.evicted) for o in outcomes],
        ).render()
    )
    refusal = next((o.first_refusal for o in outcomes if o.first_refusal), "")
    print(f"first refused write: {refusal}\n")
    print(
        Table(
            "pub/sub: a subscriber disconnected while messages were published",
            ("published while away", "receivers per PUBLISH (sum)", "received after it came back"),
            [(pubsub.published_while_away, pubsub.receivers_while_away, pubsub.received_after_return)],
        ).render()
    )
    print()
    print(
        Table(
            "Streams: consumer a reads with XREADGROUP and dies before XACK; consumer b runs XAUTOCLAIM",
            (
                "added",
                "read by a",
                "pending after a died",
                "claimed by b",
                "deliveries of entry 1",
                "pending after b acks",
            ),
            [
                (
                    stream.added,
                    stream.read_by_crashed,
                    stream.pending_after_crash,
                    stream.claimed_by_survivor,
                    stream.delivery_count,
                    stream.pending_after_ack,
                )
            ],
        ).render()
    )
    print()
    print(
        Table(
            "Lua: a script that errors after a write, and a script that spins past busy-reply-threshold (100 ms)",
            ("error midway", "write before it kept", "another client's PING", "the spinning script"),
            [(script.error_midway, str(script.kept_after_error), script.other_client_got, script.spinning_script_got)],
        ).render()
    )


if __name__ == "__main__":
    main()
