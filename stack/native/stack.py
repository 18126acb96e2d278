"""The whole native stack: start in dependency order (RabbitMQ first, it is slowest), record every PID, tear down.

Why a recorded state file: ``python -m stack fault app stop`` runs in another process than ``make up``, and a test
run killed with SIGKILL cannot clean up after itself. Every process is recorded with its PID *and* its start
time, so a later command acts on exactly the processes we started, never on a PID the kernel reused.
See notes/docker.md ("How the native provider stands in for compose").
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from stack.base import SERVICE_NAMES, StackError
from stack.native.brokers import RabbitMQServer, RedisServer
from stack.native.fault_proxy import fault_proxy_process, start_fault_proxy
from stack.native.hops import HopRouting
from stack.native.layout import PROXIED, Layout
from stack.native.pgbouncer import PgBouncer
from stack.native.postgres import PostgresPrimary, PostgresReplica
from stack.native.process import ServiceProcess, start_time
from stack.native.service import NativeService
from stack.native.web import REPO, AppServer, EdgeLimits, NginxServer, PaymentsSimulator
from stack.native.worker import WorkerProcess

Report = Callable[[str], None]


def asyncpg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


class NativeStack:
    """Every service of refstack as private processes; ``stack["redis"].pause()`` and friends."""

    def __init__(
        self,
        layout: Layout,
        owner: list[int | None] | None = None,
        app_settings: dict[str, str] | None = None,
        edge_limits: EdgeLimits | None = None,
    ) -> None:
        self.layout = layout
        self.app_settings = dict(app_settings or {})
        self.edge_limits = edge_limits if edge_limits is not None else EdgeLimits()
        self.owner = owner if owner is not None else [os.getpid(), start_time(os.getpid())]
        self.primary = PostgresPrimary(layout)
        self.replica = PostgresReplica(layout, self.primary)
        self.pgbouncer = PgBouncer(layout, server_port=self.primary.port)
        self.redis = RedisServer(layout)
        self.rabbitmq = RabbitMQServer(layout)
        self.payments = PaymentsSimulator(layout)
        self.app = AppServer(layout, self.app_environment())
        self.worker = WorkerProcess(layout, self.app_environment())
        self.nginx = NginxServer(layout, self.edge_limits)
        self.services: dict[str, NativeService] = {
            svc.name: svc
            for svc in (
                self.primary,
                self.replica,
                self.pgbouncer,
                self.redis,
                self.rabbitmq,
                self.payments,
                self.app,
                self.worker,
                self.nginx,
            )
        }
        routes = {name: (layout.ports[f"proxy_{name}"], layout.ports[name]) for name in PROXIED}
        self.fault_proxy = fault_proxy_process(
            layout.ports["control"], routes, layout.base / "logs" / "fault_proxy.log"
        )

    def __getitem__(self, name: str) -> NativeService:
        return self.services[name]

    @property
    def state_path(self) -> Path:
        return self.layout.base / "state.json"

    def app_environment(self) -> dict[str, str]:
        """The app's whole configuration: every dependency on its real port, where a fault diverts the hop through
        the fault proxy on demand (stack/native/hops.py), or through the proxy always on a stack that cannot.

        With ``REFSTACK_DB_TRANSACTION_POOLER`` set in ``app_settings`` the app reaches the primary through PgBouncer.
        """
        pooled = self.app_settings.get("REFSTACK_DB_TRANSACTION_POOLER", "").lower() in ("1", "true", "yes", "on")
        return {
            "REFSTACK_ENV": "demo",
            "REFSTACK_DATABASE_URL": asyncpg_url(
                self._hop(self.pgbouncer.direct_url, self.pgbouncer.url)
                if pooled
                else self._hop(self.primary.direct_url, self.primary.url)
            ),
            # LISTEN needs a session of its own on the primary, never a pooled one (app/messaging/outbox_listener.py)
            "REFSTACK_OUTBOX_LISTEN_URL": asyncpg_url(self._hop(self.primary.direct_url, self.primary.url)),
            "REFSTACK_REPLICA_URL": asyncpg_url(self._hop(self.replica.direct_url, self.replica.url)),
            "REFSTACK_REDIS_URL": self._hop(self.redis.direct_url, self.redis.url),
            "REFSTACK_AMQP_URL": self._hop(self.rabbitmq.direct_url, self.rabbitmq.url),
            "REFSTACK_PAYMENTS_URL": self._hop(self.payments.direct_url, self.payments.url),
            **self.app_settings,
        }

    def _hop(self, direct: str, proxied: str) -> str:
        """The address the stack's own clients use for one dependency (``url`` stays the proxy's, for everyone else:
        a test's client is slowed and cut by the proxy itself)."""
        return direct if self.layout.divert_on_demand else proxied

    # -- lifecycle ---------------------------------------------------------------------------------------
    def up(self, report: Report = print) -> float:
        """Start everything, reporting per service; on any failure tear down what started and re-raise."""
        began = time.monotonic()
        self.save_state()
        try:
            self._timed("fault-proxy", self._start_fault_proxy, report)
            # Independent chains side by side. The app may boot before its dependencies: it starts degraded and
            # connects lazily, and the stack is reported up only when every chain has finished.
            self._in_parallel(
                lambda: self._timed("rabbitmq", self.rabbitmq.start, report),
                lambda: self._start_postgres_chain(report),
                lambda: self._timed("redis", self.redis.start, report),
                lambda: self._timed("payments", self.payments.start, report),
                lambda: (self._timed("app", self.app.start, report), self._timed("nginx", self.nginx.start, report)),
            )
        except BaseException:
            self.down()
            raise
        finally:
            if self.layout.base.exists():
                self.save_state()
        total = time.monotonic() - began
        report(f"stack up in {total:.1f} s")
        return total

    def _start_postgres_chain(self, report: Report) -> None:
        """The primary first; then its replica, its pooler and its schema (migrations, then demo data) side by side;
        the worker once the schema is there (its inbox is a table; it waits for RabbitMQ by itself)."""
        self._timed("postgres", self.primary.start, report)
        self._in_parallel(
            lambda: self._timed("replica", self.replica.start, report),
            lambda: self._timed("pgbouncer", self.pgbouncer.start, report),
            lambda: (
                self._timed("migrations", self.migrate, report),
                self._timed("seed", self.seed, report),
                self._timed("worker", self.worker.start, report),
            ),
        )

    @staticmethod
    def _in_parallel(*steps: Callable[[], object]) -> None:
        """Run the steps on threads (they wait on other processes, not on the GIL); re-raise the first failure."""
        with ThreadPoolExecutor(max_workers=len(steps)) as pool:
            for future in [pool.submit(step) for step in steps]:
                future.result()

    @staticmethod
    def _timed(name: str, action: Callable[[], None], report: Report) -> None:
        began = time.monotonic()
        action()
        report(f"  {name:<12} ready in {time.monotonic() - began:5.2f} s")

    def _start_fault_proxy(self) -> None:
        start_fault_proxy(self.fault_proxy, self.layout.ports["control"])

    def fail_over(self) -> None:
        """Promote the replica (refused while the primary runs) and move every address that named the primary: the
        app's, by the fault proxy's retarget, and PgBouncer's server side. See notes/db_scaling.md, "Failover"."""
        self.replica.promote()
        self.pgbouncer.repoint(self.replica.port)

    def migrate(self) -> None:
        """``alembic upgrade head`` against the primary directly, before the app starts (never inside it)."""
        self._run_step("migrations", ["-m", "alembic", "upgrade", "head"])

    def seed(self) -> None:
        """Demo accounts and events (idempotent), so a newcomer can explore at once."""
        self._run_step("seed", ["-m", "app.seed"])

    def _run_step(self, what: str, args: list[str]) -> None:
        env = {**os.environ, "REFSTACK_DATABASE_URL": asyncpg_url(self.primary.direct_url)}
        result = subprocess.run(
            [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=120
        )
        if result.returncode != 0:
            raise StackError(f"{what} failed:\n{result.stderr[-2000:]}")

    def down(self) -> None:
        """Stop every process we recorded, in reverse start order, then remove the private folder."""
        for name in reversed(SERVICE_NAMES):
            self.services[name].close()
        self.fault_proxy.end()
        HopRouting(self.layout.base).remove()  # after every client process is gone (its cgroup must be empty)
        shutil.rmtree(self.layout.base, ignore_errors=True)

    # -- recorded state ----------------------------------------------------------------------------------
    def processes(self) -> Iterator[tuple[str, ServiceProcess]]:
        for name, svc in self.services.items():
            yield name, svc.process
        yield "epmd", self.rabbitmq.epmd
        yield "fault_proxy", self.fault_proxy

    def save_state(self) -> None:
        recorded = {
            name: [proc.pid, start_time(proc.pid)] if proc.pid is not None and proc.alive() else None
            for name, proc in self.processes()
        }
        state = {
            "owner": self.owner,
            "layout": self.layout.to_json(),
            "app_settings": self.app_settings,
            "edge_limits": dataclasses.asdict(self.edge_limits),
            "processes": recorded,
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_path)

    @classmethod
    def from_state(cls, path: Path) -> NativeStack:
        """Rebuild the objects of a running stack from its state file, adopting only PIDs that are still ours."""
        state = json.loads(path.read_text())
        stack = cls(
            Layout.from_json(state["layout"]),
            owner=state["owner"],
            app_settings=state.get("app_settings"),
            edge_limits=EdgeLimits(**state.get("edge_limits", {})),
        )
        stack.adopt(state["processes"])
        return stack

    def adopt(self, recorded: dict[str, Any]) -> None:
        for name, proc in self.processes():
            identity: list[int] | None = recorded.get(name)
            if identity is not None and start_time(identity[0]) == identity[1]:
                proc.adopt(identity[0])
            else:
                proc.adopt(None)

    def refresh(self) -> None:
        """Take over PIDs another command recorded (e.g. ``fault app start`` from a second terminal)."""
        if self.state_path.exists():
            state = json.loads(self.state_path.read_text())
            for name, proc in self.processes():
                identity = state["processes"].get(name)
                if identity is not None and identity[0] != proc.pid and start_time(identity[0]) == identity[1]:
                    proc.adopt(identity[0])

    def status(self) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "url": svc.url,
                "direct_url": getattr(svc, "direct_url", svc.url),
                "pids": svc.pids,
                "up": svc.process.alive(),
            }
            for name, svc in self.services.items()
        }
