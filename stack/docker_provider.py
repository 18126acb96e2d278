"""The docker provider: refstack's data services as containers, with the same verbs as the native provider.

Why: on a machine with a Docker engine the services should be the real images that docker-compose.yml runs,
while tests keep saying ``stack["redis"].pause()``. Here ``pause`` is ``docker pause`` (the cgroup freezer stops
every process in the container at once), ``stop``/``start`` stop and start the same container (its data
survives), and ``slow``/``cut``/``heal`` go through the native provider's fault proxy, which sits on this
machine between the client and the published port. testcontainers is used for creation and for its reaper
(Ryuk), which removes the containers even when the test process is killed.

The engine must be local: host ports are pinned on 127.0.0.1 so a stopped and restarted container keeps its
address, and the fault proxy forwards to loopback. Nothing here touches Docker until ``start()``;
testcontainers and the Docker SDK are imported inside the functions that need them. See notes/docker.md.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from stack.base import StackError
from stack.native.fault_proxy import spawn_fault_proxy
from stack.native.layout import free_port
from stack.native.process import ServiceProcess, wait_until

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "stack" / "docker"
DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
APP_USER, APP_PASSWORD, DATABASE = "app", "app", "refstack"
REPLICATION_PASSWORD, SUPERUSER_PASSWORD = "repl", "postgres"
AMQP_USER, AMQP_PASSWORD = "refstack", "refstack"
PG_READY = ("pg_isready", "-h", "127.0.0.1", "-U", "postgres")
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10


def docker_engine_available(timeout_s: float = 1.0, base_url: str | None = None) -> bool:
    """True when a Docker engine answers a ping within ``timeout_s``; never raises, never waits much longer.

    ``base_url`` defaults to what testcontainers would use (tc.host, DOCKER_HOST, the docker context, else the
    local socket), so "available" means "testcontainers can use it".
    """
    import docker
    from docker.errors import DockerException
    from requests.exceptions import RequestException
    from testcontainers.core.docker_client import get_docker_host

    url = base_url if base_url is not None else get_docker_host()
    socket_path = unix_socket_path(url)
    if socket_path is not None and not unix_socket_accepts(socket_path, timeout_s):
        return False
    try:
        client = docker.DockerClient(
            base_url=url,
            version="auto",
            timeout=timeout_s,
            use_ssh_client=bool(url and url.startswith("ssh://")),
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (DockerException, RequestException, OSError):
        return False


def unix_socket_path(url: str | None) -> str | None:
    """The socket file behind a Docker URL (``None`` means the SDK's default socket), or None for tcp/ssh."""
    if url is None:
        return DEFAULT_DOCKER_SOCKET
    for scheme in ("unix://", "http+unix://"):
        if url.startswith(scheme):
            return url.removeprefix(scheme)
    return None


def unix_socket_accepts(path: str, timeout_s: float) -> bool:
    """Checked before the SDK is asked: docker-py leaks its socket when a unix connect fails."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class ContainerSpec:
    """One service as docker-compose.yml runs it: image, settings, and the check that says it is ready."""

    name: str
    image: str
    port: int
    url_template: str
    ready_command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    user: str | None = None
    files: Mapping[str, Path] = field(default_factory=dict)


def postgres_spec() -> ContainerSpec:
    return ContainerSpec(
        name="postgres",
        image="postgres:15",
        port=5432,
        url_template=f"postgresql://{APP_USER}:{APP_PASSWORD}@{{host}}:{{port}}/{DATABASE}",
        ready_command=PG_READY,
        env={
            "POSTGRES_PASSWORD": SUPERUSER_PASSWORD,
            "POSTGRES_DB": DATABASE,
            "REFSTACK_APP_DB_PASSWORD": APP_PASSWORD,
            "REFSTACK_REPLICATION_PASSWORD": REPLICATION_PASSWORD,
        },
        command=("postgres", "-c", "max_slot_wal_keep_size=1GB"),
        files={"/docker-entrypoint-initdb.d/10-refstack.sh": SCRIPTS / "postgres-init.sh"},
    )


def replica_spec(primary_host: str = "postgres") -> ContainerSpec:
    return ContainerSpec(
        name="replica",
        image="postgres:15",
        port=5432,
        url_template=f"postgresql://{APP_USER}:{APP_PASSWORD}@{{host}}:{{port}}/{DATABASE}",
        ready_command=PG_READY,
        env={"PRIMARY_HOST": primary_host, "REFSTACK_REPLICATION_PASSWORD": REPLICATION_PASSWORD},
        entrypoint=("sh", "/usr/local/bin/refstack-replica.sh"),
        command=(
            "-c",
            "wal_retrieve_retry_interval=200ms",
            "-c",
            "hot_standby_feedback=on",
            "-c",
            "max_slot_wal_keep_size=1GB",
        ),
        user="postgres",
        files={"/usr/local/bin/refstack-replica.sh": SCRIPTS / "replica-entrypoint.sh"},
    )


def redis_spec() -> ContainerSpec:
    return ContainerSpec(
        name="redis",
        image="redis:7",
        port=6379,
        url_template="redis://{host}:{port}/0",
        ready_command=("sh", "-c", "redis-cli ping | grep -q PONG"),
        command=("redis-server", "--save", "", "--appendonly", "no"),
    )


def rabbitmq_spec() -> ContainerSpec:
    return ContainerSpec(
        name="rabbitmq",
        image="rabbitmq:3.13",
        port=5672,
        url_template=f"amqp://{AMQP_USER}:{AMQP_PASSWORD}@{{host}}:{{port}}/",
        ready_command=("rabbitmq-diagnostics", "-q", "check_port_connectivity"),
        env={"RABBITMQ_DEFAULT_USER": AMQP_USER, "RABBITMQ_DEFAULT_PASS": AMQP_PASSWORD},
    )


def parse_lsn(text: str) -> int:
    """A PostgreSQL LSN such as ``16/B374D848`` as a byte position in the WAL."""
    high, slash, low = text.strip().partition("/")
    try:
        if not slash:
            raise ValueError(text)
        return (int(high, 16) << 32) + int(low, 16)
    except ValueError:
        raise StackError(f"not a PostgreSQL LSN: {text!r}") from None


class PrivateNetwork:
    """The stack's own Docker network (containers find each other by service name); created on first use."""

    def __init__(self) -> None:
        self._network: Network | None = None

    def get(self) -> Network:
        if self._network is None:
            from testcontainers.core.network import Network

            self._network = Network().create()
        return self._network

    def remove(self) -> None:
        if self._network is not None:
            self._network.remove()
            self._network = None


class ContainerService:
    """One container with the verbs of stack.base.Service. ``url`` goes through the fault proxy."""

    def __init__(self, spec: ContainerSpec, *, network: PrivateNetwork, control_port: int) -> None:
        self.name = spec.name
        self.spec = spec
        self.network = network
        self.control_port = control_port
        self.host_port = free_port()
        self.proxy_port = free_port()
        self._container: DockerContainer | None = None

    @property
    def url(self) -> str:
        return self.spec.url_template.format(host="127.0.0.1", port=self.proxy_port)

    @property
    def direct_url(self) -> str:
        """For setup and checks: the published port itself, which the fault proxy never touches."""
        return self.spec.url_template.format(host="127.0.0.1", port=self.host_port)

    @property
    def pids(self) -> list[int]:
        """The container's processes as the engine's host sees them (empty when not running)."""
        if self._container is None or self._status() not in {"running", "paused"}:
            return []
        top = self._wrapped().top()
        column = top["Titles"].index("PID")
        return [int(row[column]) for row in top["Processes"]]

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._container is None:
            self._container = self._create()
        elif self._status() in {"running", "paused"}:
            return
        else:
            self._wrapped().start()
        wait_until(self._ready, timeout_s=START_TIMEOUT_S, what=f"{self.name} start")

    def stop(self) -> None:
        self._wrapped().stop(timeout=STOP_TIMEOUT_S)

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        self._wrapped().pause()

    def resume(self) -> None:
        self._wrapped().unpause()

    def remove(self) -> None:
        """Delete the container and its anonymous volumes (teardown; Ryuk does it if we never get here)."""
        if self._container is not None:
            self._container.stop()
            self._container = None

    # -- faults on the link, through the native fault proxy --------------------------------------------------
    def slow(self, ms: int) -> None:
        self._fault(f"slow {self.name} {ms}")

    def cut(self) -> None:
        self._fault(f"cut {self.name}")

    def heal(self) -> None:
        self._fault(f"heal {self.name}")

    def _fault(self, command: str) -> None:
        from stack.native.fault_proxy import send_command  # pulls in aiomisc and pytest: only when used

        try:
            send_command(self.control_port, command)
        except OSError as exc:
            raise StackError(
                f"{self.name}: the fault proxy on 127.0.0.1:{self.control_port} did not answer {command!r} "
                f"({exc}); start the stack first"
            ) from exc

    # -- inside the container ----------------------------------------------------------------------------------
    def exec(self, argv: list[str], *, user: str = "") -> str:
        """Run a command in the container; its output, or a StackError quoting it."""
        code, output = self._wrapped().exec_run(argv, user=user)
        text: str = output.decode(errors="replace")
        if code != 0:
            raise StackError(f"{self.name}: {' '.join(argv[:3])} failed ({code}):\n{text.strip()}")
        return text

    def _create(self) -> DockerContainer:
        from testcontainers.core.container import DockerContainer

        spec = self.spec
        options: dict[str, Any] = {}
        if spec.entrypoint is not None:
            options["entrypoint"] = list(spec.entrypoint)
        if spec.user is not None:
            options["user"] = spec.user
        container = DockerContainer(
            spec.image,
            env=dict(spec.env),
            network=self.network.get(),
            network_aliases=[spec.name],
            **options,
        )
        # Docker accepts (ip, port); testcontainers' with_bind_ports only takes a port and would bind 0.0.0.0.
        ports: dict[str, Any] = container.ports
        ports[f"{spec.port}/tcp"] = ("127.0.0.1", self.host_port)
        if spec.command is not None:
            container.with_command(list(spec.command))
        for destination, source in spec.files.items():
            container.with_copy_into_container(source, destination, 0o755)
        container.start()
        host = container.get_container_host_ip()
        if host not in LOCAL_HOSTS:
            container.stop()
            raise StackError(
                f"{self.name}: the engine publishes ports on {host}, not on this machine; the docker provider "
                "needs a local engine (pinned loopback ports, fault proxy on loopback)"
            )
        return container

    def _wrapped(self) -> Any:
        if self._container is None:
            raise StackError(f"{self.name}: the container has not been started")
        return self._container.get_wrapped_container()

    def _status(self) -> str:
        wrapped = self._wrapped()
        wrapped.reload()
        return str(wrapped.status)

    def _ready(self) -> bool:
        from docker.errors import APIError

        if self._status() in {"exited", "dead"}:
            logs = self._wrapped().logs(tail=20).decode(errors="replace")
            raise StackError(f"{self.name}: container exited while starting; last log lines:\n{logs}")
        try:
            code, _ = self._wrapped().exec_run(list(self.spec.ready_command), user=self.spec.user or "")
        except APIError:
            return False
        return bool(code == 0)


class PostgresContainerService(ContainerService):
    """A PostgreSQL container whose control queries run as the superuser over the container's own socket."""

    def sql(self, query: str) -> str:
        argv = ["psql", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-Atc", query]
        return self.exec(argv, user="postgres").strip()


class ReplicaContainerService(PostgresContainerService):
    """The streaming replica: replay control, lag in bytes and promotion, measured with LSNs."""

    def __init__(
        self,
        spec: ContainerSpec,
        *,
        primary: PostgresContainerService,
        network: PrivateNetwork,
        control_port: int,
    ) -> None:
        super().__init__(spec, network=network, control_port=control_port)
        self.primary = primary

    def pause_replay(self) -> None:
        self.sql("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.sql("SELECT pg_wal_replay_resume()")

    def lag_bytes(self) -> int:
        # Replica first: its LSN can only grow, so reading the primary second never gives a negative lag.
        replayed = parse_lsn(self.sql("SELECT pg_last_wal_replay_lsn()"))
        current = parse_lsn(self.primary.sql("SELECT pg_current_wal_lsn()"))
        return current - replayed

    def promote(self) -> None:
        if self.sql("SELECT pg_promote(wait => true, wait_seconds => 30)") != "t":
            raise StackError("replica: pg_promote did not finish within 30 s")


class ContainerStack:
    """postgres, replica, redis and rabbitmq as containers on one private network, behind one fault proxy."""

    def __init__(self) -> None:
        self.network = PrivateNetwork()
        self.control_port = free_port()
        primary = PostgresContainerService(postgres_spec(), network=self.network, control_port=self.control_port)
        replica = ReplicaContainerService(
            replica_spec(primary.name), primary=primary, network=self.network, control_port=self.control_port
        )
        self.services: dict[str, ContainerService] = {
            svc.name: svc
            for svc in (
                primary,
                replica,
                ContainerService(redis_spec(), network=self.network, control_port=self.control_port),
                ContainerService(rabbitmq_spec(), network=self.network, control_port=self.control_port),
            )
        }
        self._log_dir: Path | None = None
        self._fault_proxy: ServiceProcess | None = None

    def __getitem__(self, name: str) -> ContainerService:
        return self.services[name]

    def start(self) -> None:
        """Fault proxy first, then every container in dependency order; on failure remove what started."""
        try:
            self._start_fault_proxy()
            for svc in self.services.values():
                svc.start()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for svc in reversed(self.services.values()):
            svc.remove()
        self.network.remove()
        if self._fault_proxy is not None:
            self._fault_proxy.end()
            self._fault_proxy = None
        if self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None

    def __enter__(self) -> ContainerStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _start_fault_proxy(self) -> None:
        self._log_dir = Path(tempfile.mkdtemp(prefix="refstack-docker-"))
        routes = {svc.name: (svc.proxy_port, svc.host_port) for svc in self.services.values()}
        self._fault_proxy = spawn_fault_proxy(self.control_port, routes, self._log_dir / "fault_proxy.log")
