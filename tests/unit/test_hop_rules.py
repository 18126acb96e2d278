"""The rules a stack's hop routing writes, and the names it owns, derived from nothing but its folder.

A fault's redirect comes before a failover's move, so a moved hop that is also slowed is slowed (nat rules stop at
the first match); each rule matches only the stack's own cgroup; the table and cgroup names carry the stack's
folder, so two stacks never touch each other's. See notes/fault_tolerance.md, "Breaking things on purpose".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.native import hops
from stack.native.hops import FAULT, MOVED, HopRouting


@pytest.fixture
def routing(monkeypatch: pytest.MonkeyPatch) -> HopRouting:
    monkeypatch.setattr(hops, "cgroup2_mount", lambda: Path("/sys/fs/cgroup/unified"))
    return HopRouting(Path("/tmp/refstack-ab_c1"))


def test_names_come_from_the_stack_folder(routing: HopRouting) -> None:
    assert routing.table == "refstack_hops_refstack_ab_c1"
    assert routing.cgroup == Path("/sys/fs/cgroup/unified/refstack-clients-refstack_ab_c1")


def test_a_fault_rule_comes_before_a_move_and_matches_only_the_stacks_clients(routing: HopRouting) -> None:
    member = 'socket cgroupv2 level 1 "unified/refstack-clients-refstack_ab_c1"'
    assert routing.rules({"5432": {MOVED: 5433, FAULT: 6000}, "6379": {FAULT: 6001}}) == [
        f"{member} ip daddr 127.0.0.1 tcp dport 5432 redirect to :6000",
        f"{member} ip daddr 127.0.0.1 tcp dport 6379 redirect to :6001",
        f"{member} ip daddr 127.0.0.1 tcp dport 5432 redirect to :5433",
    ]
    assert routing.rules({}) == []


def test_an_enrolled_command_joins_the_cgroup_then_becomes_the_command(routing: HopRouting) -> None:
    argv = routing.enrol(["nginx", "-p", "/x"])
    assert argv[:2] == ["sh", "-c"]
    assert 'exec "$@"' in argv[2]
    assert argv[3:] == [str(routing.cgroup), "nginx", "-p", "/x"]
