"""The fault proxy process against a local echo server: slow adds the delay, cut refuses, heal restores, and
retarget moves the address to another server (the failover move).

No refstack service is needed; the proxy is real (its own process), the echo server is a thread.
See notes/fault_tolerance.md ("Breaking things on purpose").
"""

from __future__ import annotations

import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.native.fault_proxy import send_command, spawn_fault_proxy
from stack.native.layout import free_port

REPO = Path(__file__).resolve().parents[2]


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data)


class Shout(socketserver.BaseRequestHandler):
    """Another server, told apart from Echo by its answer."""

    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data.upper())


def serve(handler: type[socketserver.BaseRequestHandler]) -> socketserver.ThreadingTCPServer:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def proxied_echo(tmp_path: Path) -> Iterator[tuple[int, int]]:
    server = serve(Echo)
    listen, control = free_port(), free_port()
    proxy = spawn_fault_proxy(control, {"echo": (listen, server.server_address[1])}, tmp_path / "proxy.log")
    try:
        yield listen, control
    finally:
        proxy.end()
        server.shutdown()
        server.server_close()


def round_trip_s(port: int) -> float:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        began = time.monotonic()
        conn.sendall(b"ping")
        assert conn.recv(16) == b"ping"
        return time.monotonic() - began


def test_slow_cut_heal(proxied_echo: tuple[int, int]) -> None:
    listen, control = proxied_echo
    fast = round_trip_s(listen)
    send_command(control, "slow echo 400")
    assert round_trip_s(listen) >= 0.38 > fast
    send_command(control, "cut echo")
    with pytest.raises(ConnectionRefusedError):
        round_trip_s(listen)
    send_command(control, "heal echo")
    assert round_trip_s(listen) < 0.2


def test_retarget_moves_new_links_to_the_other_server_and_drops_old_ones(proxied_echo: tuple[int, int]) -> None:
    listen, control = proxied_echo
    other = serve(Shout)
    try:
        with socket.create_connection(("127.0.0.1", listen), timeout=5) as old_link:
            old_link.sendall(b"ping")
            assert old_link.recv(16) == b"ping"
            send_command(control, f"retarget echo {other.server_address[1]}")
            assert old_link.recv(16) == b""  # the link to the old server was closed by the move
        with socket.create_connection(("127.0.0.1", listen), timeout=5) as new_link:
            new_link.sendall(b"ping")
            assert new_link.recv(16) == b"PING"
    finally:
        other.shutdown()
        other.server_close()


def test_unknown_commands_are_refused_with_the_valid_ones(proxied_echo: tuple[int, int]) -> None:
    _, control = proxied_echo
    with pytest.raises(RuntimeError, match="routes: echo"):
        send_command(control, "slow nowhere 5")
    with pytest.raises(RuntimeError, match="unknown verb"):
        send_command(control, "melt echo")


def test_help_describes_the_control_protocol() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stack.native.fault_proxy", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "slow NAME MS" in result.stdout
