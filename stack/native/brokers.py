"""Private Redis and RabbitMQ: no config from /etc, no system service wrappers, nothing on standard ports.

Why this way: the Debian wrappers ``cd`` into system folders and switch users; the system-wide epmd on 4369 is
shared by every Erlang node on the machine, so our broker gets its own epmd that we own and end by PID.
Readiness is a protocol answer (``+PONG``, the AMQP ``connection.start`` frame), not an open socket.
See notes/docker.md ("How the native provider stands in for compose").
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from stack.native.layout import Layout
from stack.native.process import ServiceProcess
from stack.native.service import NativeService

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
AMQP_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
AMQP_METHOD_FRAME = 1


def exchange(port: int, payload: bytes, timeout_s: float = 1.0) -> bytes:
    """Send ``payload`` and return the first bytes answered (empty on any failure)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as conn:
            conn.sendall(payload)
            return conn.recv(64)
    except OSError:
        return b""


class RedisServer(NativeService):
    name = "redis"
    fault_client = False

    def _process(self) -> ServiceProcess:
        argv = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            "",
            "--protected-mode",
            "no",
        ]
        return ServiceProcess(argv, self.layout.base / "logs" / "redis.log")

    def _ready(self) -> bool:
        return exchange(self.port, b"PING\r\n").startswith(b"+PONG")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.client_port}/0"

    @property
    def direct_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class RabbitMQServer(NativeService):
    name = "rabbitmq"
    fault_client = False
    start_timeout_s = 90.0  # Erlang boot is the slowest start; a loaded machine doubles it

    def __init__(self, layout: Layout) -> None:
        super().__init__(layout)
        self.epmd = ServiceProcess(
            ["epmd", "-port", str(layout.ports["epmd"]), "-address", "127.0.0.1"],
            layout.base / "logs" / "epmd.log",
        )

    @property
    def node(self) -> str:
        return f"refstack-{self.port}@localhost"

    def environment(self) -> dict[str, str]:
        d = self.dir
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(d / "home"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.layout.ports["rabbitmq_dist"]),
            "ERL_EPMD_PORT": str(self.layout.ports["epmd"]),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(d / "beam.pid"),
        }

    def _process(self) -> ServiceProcess:
        return ServiceProcess(
            [str(RABBIT_BIN / "rabbitmq-server")],
            self.layout.base / "logs" / "rabbitmq.log",
            env=self.environment(),
        )

    def _prepared(self) -> bool:
        return (self.dir / "rabbitmq.conf").exists()

    def _prepare(self) -> None:
        home = self.dir / "home"
        home.mkdir(exist_ok=True)
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
            "log.console = true\nlog.console.level = warning\nlog.file = false\n"
        )
        (self.dir / "advanced.config").write_text("[{kernel, [{inet_dist_use_interface, {127,0,0,1}}]}].\n")
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")

    def start(self) -> None:
        if not self.epmd.alive():
            self.epmd.spawn()
        (self.dir / "beam.pid").unlink(missing_ok=True)
        super().start()

    def _ready(self) -> bool:
        answer = exchange(self.port, AMQP_PROTOCOL_HEADER)
        return len(answer) > 0 and answer[0] == AMQP_METHOD_FRAME

    def _stop_pid(self) -> int | None:
        """SIGTERM to beam.smp is a graceful broker stop; the shell wrapper above it then exits."""
        try:
            return int((self.dir / "beam.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return self.process.pid

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.client_port}/"

    @property
    def direct_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def close(self) -> None:
        super().close()
        self.epmd.end(signal.SIGTERM)
