"""A TCP proxy process in front of each service, so ``slow``/``cut``/``heal`` reach a separate app process.

Why a process of its own: aiomisc's ``TCPProxy`` runs inside an event loop, but the client we want to hurt is the
app (another process) and the person typing ``python -m stack fault redis slow 300`` is a third one. So one small
process hosts one proxy per service and takes commands on a loopback control port, one line each:
``slow NAME MS`` | ``cut NAME`` | ``heal NAME`` | ``retarget NAME PORT`` | ``ping``. The stack's own setup and
checks never go through it. ``retarget`` moves a service's address to another server, as a floating IP or a DNS
name moves in a failover (notes/db_scaling.md, "Failover").
See notes/fault_tolerance.md ("Breaking things on purpose").

Run: ``python -m stack.native.fault_proxy --control PORT --route NAME:LISTEN_PORT:TARGET_PORT ...``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from pathlib import Path

from aiomisc.pytest import TCPProxy

from stack.native.process import ServiceProcess, wait_until


class ProxyRoute:
    """One proxied service: a listening port that forwards to the real one, with delay and cut switches."""

    def __init__(self, name: str, listen_port: int, target_port: int) -> None:
        self.name = name
        self.proxy = TCPProxy("127.0.0.1", target_port)
        self.proxy.proxy_port = listen_port

    async def open(self) -> None:
        if self.proxy.server is None:
            await self.proxy.start()

    async def slow(self, ms: int) -> None:
        """Delay each direction by half, so one request/response round trip costs about ``ms`` more."""
        half = ms / 2000
        self.proxy.set_delay(half, half)

    async def cut(self) -> None:
        """Drop every link and refuse new ones: clients see resets, then connection refused."""
        await self.proxy.close()
        self.proxy.server = None

    async def heal(self) -> None:
        self.proxy.set_delay(0, 0)
        await self.open()

    async def retarget(self, target_port: int) -> None:
        """Send new links to ``target_port``; links to the old server are dropped, as a moved address drops them."""
        self.proxy.target_port = target_port
        await self.proxy.disconnect_all()


class ControlServer:
    """Applies one command per line to the routes and answers ``ok`` or ``error: ...``."""

    def __init__(self, routes: dict[str, ProxyRoute]) -> None:
        self.routes = routes

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.closing(writer):
            line = (await reader.readline()).decode().split()
            writer.write((await self.apply(line) + "\n").encode())
            await writer.drain()

    async def apply(self, words: list[str]) -> str:
        if words == ["ping"]:
            return "ok"
        if len(words) < 2 or words[1] not in self.routes:
            return f"error: unknown command {' '.join(words)!r}; routes: {', '.join(sorted(self.routes))}"
        verb, route = words[0], self.routes[words[1]]
        if verb == "slow" and len(words) == 3 and words[2].isdigit():
            await route.slow(int(words[2]))
        elif verb == "cut":
            await route.cut()
        elif verb == "heal":
            await route.heal()
        elif verb == "retarget" and len(words) == 3 and words[2].isdigit():
            await route.retarget(int(words[2]))
        else:
            return f"error: unknown verb {verb!r}; use slow NAME MS | cut NAME | heal NAME | retarget NAME PORT"
        return "ok"


def send_command(control_port: int, command: str, timeout_s: float = 5.0) -> None:
    """Client side, used by the stack: one line out, ``ok`` back, or a ``RuntimeError`` naming the problem."""
    with socket.create_connection(("127.0.0.1", control_port), timeout=timeout_s) as conn:
        conn.sendall(command.encode() + b"\n")
        answer = conn.makefile().readline().strip()
    if answer != "ok":
        raise RuntimeError(f"fault proxy refused {command!r}: {answer}")


def fault_proxy_process(control_port: int, routes: dict[str, tuple[int, int]], log_path: Path) -> ServiceProcess:
    """The proxy process for ``routes`` (name → (listen port, target port)), not started yet."""
    argv = [sys.executable, "-m", "stack.native.fault_proxy", "--control", str(control_port)]
    for name, (listen, target) in routes.items():
        argv += ["--route", f"{name}:{listen}:{target}"]
    return ServiceProcess(argv, log_path, cwd=Path(__file__).resolve().parents[2])


def start_fault_proxy(proxy: ServiceProcess, control_port: int) -> None:
    """Spawn the proxy and wait until its control port answers."""
    proxy.spawn()

    def answers() -> bool:
        try:
            send_command(control_port, "ping", timeout_s=0.5)
        except OSError:
            return False
        return True

    wait_until(answers, timeout_s=10, what="fault-proxy start", watch=proxy)


def spawn_fault_proxy(control_port: int, routes: dict[str, tuple[int, int]], log_path: Path) -> ServiceProcess:
    """Build and start the proxy in one step (for callers that never rebuild it from recorded state)."""
    proxy = fault_proxy_process(control_port, routes, log_path)
    start_fault_proxy(proxy, control_port)
    return proxy


async def serve(control_port: int, routes: dict[str, ProxyRoute]) -> None:
    for route in routes.values():
        await route.open()
    control = ControlServer(routes)
    server = await asyncio.start_server(control.handle, "127.0.0.1", control_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    for route in routes.values():
        await route.cut()


def parse_route(text: str) -> ProxyRoute:
    name, listen, target = text.split(":")
    return ProxyRoute(name, int(listen), int(target))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--control", type=int, required=True)
    parser.add_argument("--route", action="append", type=parse_route, default=[])
    args = parser.parse_args()
    asyncio.run(serve(args.control, {route.name: route for route in args.route}))


if __name__ == "__main__":
    main()
