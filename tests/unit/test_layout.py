"""``make up`` ports, and the free ports of a test stack, can never be taken by a test stack or an outgoing
connection. See notes/docker.md."""

from __future__ import annotations

from pathlib import Path

from stack.native.layout import FIXED_PORTS, STANDARD_PORTS, Layout, free_port


def test_fixed_ports_are_outside_the_ephemeral_range_and_not_standard() -> None:
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for name, port in FIXED_PORTS.items():
        assert not low <= port <= high, f"{name} port {port} lies in the ephemeral range {low}-{high}"
        assert port not in STANDARD_PORTS
    assert len(set(FIXED_PORTS.values())) == len(FIXED_PORTS)


def test_free_ports_are_outside_the_ephemeral_range_and_never_handed_out_twice() -> None:
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert not any(low <= port <= high for port in ports)
    assert not set(ports) & (set(FIXED_PORTS.values()) | STANDARD_PORTS)


def test_a_state_recorded_before_a_service_existed_still_rebuilds() -> None:
    """A stack recorded by an older version (no PgBouncer yet) can still be rebuilt, so the reaper can end it."""
    recorded = {"base": "/tmp/refstack-old", "ports": {"postgres": 40001, "proxy_postgres": 40002}}
    layout = Layout.from_json(recorded)
    assert (layout.ports["postgres"], layout.ports["proxy_postgres"]) == (40001, 40002)
    assert {"pgbouncer", "proxy_pgbouncer", "control"} <= set(layout.ports)
