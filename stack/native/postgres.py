"""A private PostgreSQL 15 primary and a streaming replica, run as the ``postgres`` user.

Why this shape: PostgreSQL refuses to run as root, forks one process per connection (each calls setsid(), so a
process-group signal misses them — ``pause`` walks /proc instead), and a replica made with
``pg_basebackup -R -C -S`` streams through a slot so the primary keeps the WAL it has not received, up to
``max_slot_wal_keep_size`` (1GB, as in docker-compose.yml): a replica gone for longer loses its slot instead of
filling the primary's disk.
Control queries (pause replay, lag, promote) use the superuser over the private unix socket, never the proxy.
See notes/docker.md ("How the native provider stands in for compose"); replication itself is notes/db_scaling.md.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from stack.base import StackError
from stack.native.fault_proxy import send_command
from stack.native.hops import MOVED
from stack.native.layout import Layout
from stack.native.process import ServiceProcess, wait_until
from stack.native.service import NativeService

PG_BIN = Path("/usr/lib/postgresql/15/bin")
APP_USER, APP_PASSWORD, DATABASE = "app", "app", "refstack"
REPLICATION_USER, REPLICATION_PASSWORD, SLOT = "replicator", "repl", "replica1"
CONFIG = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
max_slot_wal_keep_size = '1GB'
wal_retrieve_retry_interval = '200ms'
hot_standby_feedback = on
fsync = off
full_page_writes = off
shared_buffers = '64MB'
max_connections = 200
log_min_messages = warning
"""


def run_as_postgres(argv: list[str], *, user: str | None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, user=user, group=user, check=False, timeout=60)
    if result.returncode != 0:
        raise StackError(f"{' '.join(argv[:2])} failed ({result.returncode}):\n{result.stderr.strip()}")
    return result.stdout


def postgres_os_user() -> str | None:
    """Root must switch to ``postgres`` (initdb refuses root); anyone else runs PostgreSQL as themselves."""
    return "postgres" if os.geteuid() == 0 else None


def owned_dir(path: Path, user: str | None) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


class PostgresNode(NativeService):
    """Shared by primary and replica: a data directory, the postmaster, superuser SQL over the unix socket."""

    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, exit in tens of ms
    fault_client = False  # the replica's walreceiver reaches the primary directly, whatever the app's hop does

    def __init__(self, layout: Layout) -> None:
        self.os_user = postgres_os_user()
        super().__init__(layout)
        owned_dir(self.dir, self.os_user)
        self.data_dir = self.dir / "data"

    def _process(self) -> ServiceProcess:
        return ServiceProcess(
            [str(PG_BIN / "postgres"), "-D", str(self.dir / "data")],
            self.layout.base / "logs" / f"{self.name}.log",
            user=self.os_user,
        )

    def _prepared(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def _ready(self) -> bool:
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return False
        return len(lines) >= 8 and lines[7].strip() in ("ready", "standby")

    def _write_config(self) -> None:
        conf = self.data_dir / "postgresql.auto.conf"
        with conf.open("a") as handle:
            handle.write(CONFIG.format(port=self.port, socket_dir=self.dir))

    @property
    def url(self) -> str:
        return f"postgresql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{self.client_port}/{DATABASE}"

    @property
    def direct_url(self) -> str:
        """Bypasses the fault proxy: for setup and for verifying what really happened."""
        return f"postgresql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement as superuser over the private socket; returns unaligned output."""
        argv = [str(PG_BIN / "psql"), "-h", str(self.dir), "-p", str(self.port), "-U", "postgres"]
        argv += ["-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", statement]
        return run_as_postgres(argv, user=None).strip()


class PostgresPrimary(PostgresNode):
    name = "postgres"

    def _prepare(self) -> None:
        run_as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "--no-instructions",
            ],
            user=self.os_user,
        )
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(hba.read_text() + "host all all 127.0.0.1/32 scram-sha-256\n")
        self._write_config()

    def start(self) -> None:
        first = not self._prepared()
        super().start()
        if first:
            self._create_roles()

    def _create_roles(self) -> None:
        self.sql(f"create role {REPLICATION_USER} replication login password '{REPLICATION_PASSWORD}'")
        self.sql(f"create role {APP_USER} login createdb password '{APP_PASSWORD}' in role pg_monitor")
        self.sql(f"create database {DATABASE} owner {APP_USER}")

    def current_lsn(self) -> str:
        return self.sql("select pg_current_wal_lsn()")


class PostgresReplica(PostgresNode):
    """A hot standby streaming from the primary through a replication slot."""

    name = "replica"

    def __init__(self, layout: Layout, primary: PostgresPrimary) -> None:
        super().__init__(layout)
        self.primary = primary

    def _prepare(self) -> None:
        conninfo = (
            f"host=127.0.0.1 port={self.primary.port} user={REPLICATION_USER} "
            f"password={REPLICATION_PASSWORD} application_name={SLOT}"
        )
        self.primary.sql(
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = 'replica1'"
        )
        run_as_postgres(
            [
                str(PG_BIN / "pg_basebackup"),
                "-d",
                conninfo,
                "-D",
                str(self.data_dir),
                "-R",
                "-X",
                "stream",
                "-C",
                "-S",
                SLOT,
                "--checkpoint=fast",
                "--no-sync",
            ],
            user=self.os_user,
        )
        self._write_config()

    def _ready(self) -> bool:
        return super()._ready() and self.streaming()

    def streaming(self) -> bool:
        try:
            return self.sql("select status from pg_stat_wal_receiver") == "streaming"
        except StackError:
            return False

    def pause_replay(self) -> None:
        self.sql("select pg_wal_replay_pause()")
        wait_until(
            lambda: self.sql("select pg_get_wal_replay_pause_state()") == "paused",
            timeout_s=5,
            what="replica replay pause",
        )

    def resume_replay(self) -> None:
        self.sql("select pg_wal_replay_resume()")

    def lag_bytes(self) -> int:
        """WAL the primary has written that the replica has not replayed yet (LSNs, not timestamps)."""
        primary_lsn = self.primary.current_lsn()
        lag = self.sql(f"select pg_wal_lsn_diff('{primary_lsn}', pg_last_wal_replay_lsn())")
        return max(0, int(float(lag)))

    def promote(self) -> None:
        """Fail over: this node becomes the primary and takes over the primary's address.

        Refused while the old primary still runs: two writable primaries behind one name is split brain, so it must
        be fenced (stopped) first. The address move is the fault proxy's ``retarget`` of the ``postgres`` route, the
        stand-in for a floating IP, a DNS name or a Patroni-driven HAProxy; the app keeps its DSN and reconnects.
        """
        if self.primary.process.alive():
            raise StackError(
                "refusing to promote while the primary runs (split brain): fence it first with "
                "`python -m stack fault postgres stop`"
            )
        if self.sql("select pg_promote(wait => true, wait_seconds => 30)") != "t":
            raise StackError("replica: pg_promote did not finish within 30 s")
        send_command(self.layout.ports["control"], f"retarget {self.primary.name} {self.port}")
        if self.layout.divert_on_demand:  # the clients' links to the old address now go to this node, in the kernel
            self.hops.divert(self.primary.port, self.port, MOVED)

    def rebuild(self) -> None:
        """Throw the replica away and take a fresh base backup (cheaper than pg_rewind at this size)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.start()
