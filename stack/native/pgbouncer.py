"""A private PgBouncer in transaction mode in front of the primary: the pooler the app can run through.

Why this shape: PgBouncer hands a server connection to a client for one transaction only, so a few server
backends serve many client connections; that is the whole point, and also why session state (named prepared
statements, plain ``SET``, advisory locks, ``LISTEN``) breaks behind it. Its server side goes to the primary's
real port, not through the primary's fault proxy: a pooler is deployed beside its database, and the hop that
fails in practice is app → pooler, which this service's own proxy route covers (``slow``/``cut`` work on it).
A failover therefore re-points it (``repoint``: rewrite ``[databases]``, ``RELOAD``), as an operator would.
PgBouncer refuses to run as root, so as root it runs as ``postgres``, like the databases. Readiness is a protocol
answer: the ``N`` PgBouncer gives to an SSLRequest. ``admin`` runs ``SHOW ...`` on its console for tests.
See notes/db_scaling.md ("Pooling: PgBouncer in transaction mode").
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import struct
import subprocess
from pathlib import Path

from stack.base import StackError
from stack.native.brokers import exchange
from stack.native.layout import Layout
from stack.native.postgres import APP_PASSWORD, APP_USER, DATABASE, PG_BIN, owned_dir, postgres_os_user
from stack.native.process import ServiceProcess
from stack.native.service import NativeService

PGBOUNCER_BIN = Path("/usr/sbin/pgbouncer")
ADMIN_USER, ADMIN_PASSWORD = "pgbouncer", "pgbouncer-admin"
# A second name for the same database with exactly two server connections: which server a client lands on is then
# predictable, so a test can show a statement prepared on one server being executed on the other.
TWO_SERVER_DATABASE = "refstack_two_servers"
SSL_REQUEST = struct.pack("!ii", 8, 80877103)
CONFIG = """\
[databases]
{database} = host=127.0.0.1 port={server_port} dbname={database}
{two_servers} = host=127.0.0.1 port={server_port} dbname={database} pool_size=2

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {userlist}
admin_users = {admin}
pool_mode = transaction
default_pool_size = {pool_size}
reserve_pool_size = 0
max_client_conn = {max_client_conn}
server_round_robin = 0
server_lifetime = 600
log_connections = 0
log_disconnections = 0
"""


class PgBouncer(NativeService):
    """``pool_size`` server connections per (database, user) pair, shared by up to ``max_client_conn`` clients."""

    name = "pgbouncer"
    fault_client = False
    pool_size = 10
    max_client_conn = 400

    def __init__(self, layout: Layout, server_port: int) -> None:
        self.os_user = postgres_os_user()
        self.server_port = server_port
        self.config_path = layout.dir(self.name) / "pgbouncer.ini"
        super().__init__(layout)
        owned_dir(self.dir, self.os_user)

    def _process(self) -> ServiceProcess:
        return ServiceProcess(
            [str(PGBOUNCER_BIN), str(self.config_path)],
            self.layout.base / "logs" / "pgbouncer.log",
            user=self.os_user,
        )

    def _prepared(self) -> bool:
        return self.config_path.exists()

    def _prepare(self) -> None:
        if not PGBOUNCER_BIN.exists():
            raise StackError("pgbouncer is not installed: run `bash stack/install-debian-packages.sh` as root")
        userlist = self.dir / "userlist.txt"
        userlist.write_text(f'"{APP_USER}" "{APP_PASSWORD}"\n"{ADMIN_USER}" "{ADMIN_PASSWORD}"\n')
        self._write_config()

    def _write_config(self) -> None:
        userlist = self.dir / "userlist.txt"
        self.config_path.write_text(
            CONFIG.format(
                database=DATABASE,
                two_servers=TWO_SERVER_DATABASE,
                server_port=self.server_port,
                port=self.port,
                userlist=userlist,
                admin=ADMIN_USER,
                pool_size=self.pool_size,
                max_client_conn=self.max_client_conn,
            )
        )
        if self.os_user is not None:
            for path in (userlist, self.config_path):
                shutil.chown(path, self.os_user, self.os_user)
                path.chmod(0o600)

    def repoint(self, server_port: int) -> None:
        """After a failover: send new server connections to ``server_port`` (rewrite ``[databases]``, ``RELOAD``).
        Connections to the old server are dead already; clients keep their connections to PgBouncer."""
        self.server_port = server_port
        self._write_config()
        self.admin("RELOAD")

    def _ready(self) -> bool:
        return exchange(self.port, SSL_REQUEST) == b"N"

    @property
    def url(self) -> str:
        return self.url_for(DATABASE)

    @property
    def direct_url(self) -> str:
        """Bypasses the fault proxy in front of PgBouncer."""
        return f"postgresql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def url_for(self, database: str) -> str:
        """The app user's URL for one of PgBouncer's database entries, through the fault proxy."""
        return f"postgresql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{self.client_port}/{database}"

    def admin(self, command: str) -> list[dict[str, str]]:
        """Run ``SHOW POOLS`` and friends on the admin console (direct port); one dict per row."""
        argv = [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", ADMIN_USER, "-d", "pgbouncer"]
        argv += ["-X", "--csv", "-c", command]
        env = {**os.environ, "PGPASSWORD": ADMIN_PASSWORD}
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=10)
        if result.returncode != 0:
            raise StackError(f"pgbouncer admin {command!r} failed:\n{result.stderr.strip()}")
        return list(csv.DictReader(io.StringIO(result.stdout)))
