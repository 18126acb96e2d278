"""Only the broken hop crosses the fault proxy: healed, the app and Nginx reach every service on its real port, and
a fault diverts that one hop, for the stack's clients alone, until ``heal``.

The claims (notes/fault_tolerance.md, "Breaking things on purpose"; stack/native/hops.py): while nothing is broken
the stack has no nftables table and no link of the app ends at a proxy port; ``slow`` adds one redirect in the
stack's own table and the app's next links to Redis land on Redis's proxy, while a direct connection opened here
(not in the stack's cgroup) still lands on Redis itself; ``heal`` deletes the table and the app's links come back
direct. The same for the edge: Nginx reaches the app directly until the app is slowed. Each is read from the
kernel's socket table (``ss``), not inferred from timings.
"""

from __future__ import annotations

import socket
import subprocess

import pytest

from stack.native.hops import HopRouting
from stack.native.stack import NativeStack
from tests.fault_injector import FaultInjector
from tests.polling import wait_for
from tests.probes import http

pytestmark = [pytest.mark.fault]


def links_ending_at(port: int) -> list[str]:
    """Established TCP links whose server end is ``port`` (one line each, as ``ss`` prints them)."""
    shown = subprocess.run(
        ["ss", "-tnH", "state", "established", "sport", "=", f":{port}"], capture_output=True, text=True, check=True
    )
    return shown.stdout.splitlines()


def table_exists(stack: NativeStack) -> bool:
    listed = subprocess.run(
        ["nft", "list", "table", "ip", HopRouting(stack.layout.base).table], capture_output=True, check=False
    )
    return listed.returncode == 0


@pytest.fixture(autouse=True)
def diverting(stack: NativeStack) -> None:
    if not stack.layout.divert_on_demand:
        pytest.skip(
            "this stack cannot divert hops (needs root, nft, ss and cgroup v2): its clients always cross the proxy"
        )


def links_after_a_request(stack: NativeStack, port: int) -> list[str]:
    """After a request that asks Redis (an anonymous list page is cached there; its answer does not matter here)."""
    http("GET", f"{stack.nginx.url}/api/v1/events?limit=1")
    return links_ending_at(port)


def test_a_healed_stack_has_no_rule_and_no_link_through_a_proxy(stack: NativeStack) -> None:
    assert links_after_a_request(stack, stack.redis.port) != []  # the app's pool, straight to Redis
    assert links_ending_at(stack.app.port) != []  # Nginx's keepalive links, straight to the app
    assert not table_exists(stack)
    assert links_ending_at(stack.layout.ports["proxy_redis"]) == []
    assert links_ending_at(stack.layout.ports["proxy_app"]) == []
    assert links_ending_at(stack.layout.ports["proxy_replica"]) == []


def test_a_slowed_hop_alone_goes_through_the_proxy_until_healed(stack: NativeStack, fault: FaultInjector) -> None:
    proxy = stack.layout.ports["proxy_redis"]
    fault("redis", "slow", 50)
    assert table_exists(stack)
    wait_for(lambda: links_after_a_request(stack, proxy), timeout_s=10, what="the app's links at the proxy")
    assert links_ending_at(stack.layout.ports["proxy_replica"]) == []  # the other hops stay direct

    with socket.create_connection(("127.0.0.1", stack.redis.port)) as direct:  # not one of the stack's clients
        local_port = direct.getsockname()[1]
        at_redis = [line for line in links_ending_at(stack.redis.port) if line.split()[-1].endswith(f":{local_port}")]
        assert len(at_redis) == 1  # it reached Redis itself, not the proxy

    fault("redis", "heal")
    assert not table_exists(stack)
    wait_for(lambda: links_after_a_request(stack, proxy) == [], timeout_s=10, what="no link left at the proxy")


def test_the_edge_reaches_the_app_through_the_proxy_only_while_the_app_is_slowed(
    stack: NativeStack, fault: FaultInjector
) -> None:
    proxy = stack.layout.ports["proxy_app"]
    fault("app", "slow", 50)
    wait_for(
        lambda: (http("GET", f"{stack.nginx.url}/health/live"), links_ending_at(proxy))[1],
        timeout_s=10,
        what="Nginx's links to the app at the proxy",
    )
    fault("app", "heal")
    assert http("GET", f"{stack.nginx.url}/health/live")[0] == 200
    wait_for(lambda: links_ending_at(proxy) == [], timeout_s=10, what="no link left at the app's proxy after heal")
