"""The HTTP processes of the stack: the payment simulator, the app (uvicorn, 2 workers) and Nginx in front.

Why they are started like the databases: the point of refstack is that the app is a separate process that can be
stopped, frozen or slowed while Nginx keeps answering — so it must not run inside the test process.
See notes/nginx.md and notes/fastapi.md.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from stack.base import StackError
from stack.native.layout import Layout
from stack.native.process import ServiceProcess
from stack.native.service import NativeService, http_ok

REPO = Path(__file__).resolve().parents[2]
NGINX_TEMPLATE = REPO / "nginx" / "refstack.conf.template"
NGINX_MAIN = """{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log {prefix}/logs/access.log;
    client_body_temp_path {prefix}/tmp/client_body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/refstack.conf;
}}
"""


def render_template(template: str, values: dict[str, str]) -> str:
    """Replace only our ``${NAME}`` placeholders, leaving Nginx's own ``$variables`` alone (as envsubst does)."""
    return re.sub(r"\$\{([A-Z_]+)\}", lambda m: values.get(m.group(1), m.group(0)), template)


@dataclass(frozen=True)
class EdgeLimits:
    """What Nginx allows one client address, rendered into the template: production-like by default.

    Rates are leaky buckets per ``$binary_remote_addr``; a burst is how many requests beyond the rate are answered
    at once (``nodelay``) before the 429s start. See notes/security.md, "Rate limits".
    """

    auth_per_minute: int = 30  # POST /auth/token, /auth/refresh, /auth/register
    auth_burst: int = 10
    holds_per_second: int = 5  # POST /events/{id}/holds
    holds_burst: int = 10
    client_timeout_s: int = 10  # client_header_timeout and client_body_timeout

    @property
    def retry_after_s(self) -> int:
        """Seconds until the slower bucket has room for one more request (Retry-After on the edge's 429)."""
        return max(math.ceil(60 / self.auth_per_minute), math.ceil(1 / self.holds_per_second))

    def template_values(self) -> dict[str, str]:
        return {
            "AUTH_RATE": f"{self.auth_per_minute}r/m",
            "AUTH_BURST": str(self.auth_burst),
            "HOLDS_RATE": f"{self.holds_per_second}r/s",
            "HOLDS_BURST": str(self.holds_burst),
            "RETRY_AFTER": str(self.retry_after_s),
            "CLIENT_TIMEOUT": f"{self.client_timeout_s}s",
        }


# For stacks that drive load from one address on purpose (the test session, bench/holds.py): no 429 from the edge.
UNTHROTTLED = EdgeLimits(auth_per_minute=600_000, auth_burst=10_000, holds_per_second=10_000, holds_burst=10_000)


class PaymentsSimulator(NativeService):
    """The one external service we fake, because it is external: see simulators/payments."""

    name = "payments"
    fault_client = False

    def _process(self) -> ServiceProcess:
        argv = [sys.executable, "-m", "simulators.payments", "--host", "127.0.0.1", "--port", str(self.port)]
        return ServiceProcess(argv, self.layout.base / "logs" / "payments.log", cwd=REPO)

    def _ready(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.port}/health")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def direct_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class AppServer(NativeService):
    """uvicorn with two worker processes; its environment is the app's whole configuration."""

    name = "app"
    workers = 2
    factory = "app.main:create_app"  # bench/bare_floor.py runs its floor app with the same command
    settle_s = 2.0  # Nginx closes its dropped keepalive links at once: wait for it before the next request
    start_timeout_s = 120.0  # each worker imports the whole app; on a loaded 2-core machine that alone passed 60 s

    def __init__(self, layout: Layout, environment: dict[str, str]) -> None:
        self.environment = environment
        super().__init__(layout)

    def _process(self) -> ServiceProcess:
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            self.factory,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "5",
            # Longer than Nginx's upstream keepalive_timeout (60 s): the side that reuses idle connections must be
            # the one that closes them first, or a request races the app's close and Nginx answers 502.
            "--timeout-keep-alive",
            "75",
        ]
        env = {
            **os.environ,
            **self.environment,
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
            "PYTHONUNBUFFERED": "1",  # one log line per request reaches the log at once
        }
        return ServiceProcess(argv, self.layout.base / "logs" / "app.log", env=env, cwd=REPO)

    @property
    def metrics_dir(self) -> Path:
        return self.dir / "metrics"

    def start(self) -> None:
        if not self.process.alive():
            shutil.rmtree(self.metrics_dir, ignore_errors=True)  # multiprocess metrics: one run's files only
            self.metrics_dir.mkdir(parents=True)
        super().start()

    def _ready(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.port}/health/live")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class NginxServer(NativeService):
    """The edge. It has no fault proxy: to slow or cut what it serves, slow or cut the app behind it (its link to the
    app goes straight to the app's port until then, stack/native/hops.py)."""

    name = "nginx"
    proxied = False

    def __init__(self, layout: Layout, limits: EdgeLimits | None = None) -> None:
        self.limits = limits if limits is not None else EdgeLimits()
        super().__init__(layout)

    def _process(self) -> ServiceProcess:
        conf = self.dir / "nginx.conf"
        return ServiceProcess(["nginx", "-p", str(self.dir), "-c", str(conf)], self.layout.base / "logs" / "nginx.log")

    def _prepared(self) -> bool:
        return (self.dir / "nginx.conf").exists()

    def _prepare(self) -> None:
        if shutil.which("nginx") is None:
            raise StackError("nginx is not installed: run `apt-get install -y nginx` (make test does it as root)")
        for sub in ("logs", "tmp"):
            (self.dir / sub).mkdir(exist_ok=True)
        values = {
            "APP_UPSTREAM": f"127.0.0.1:{self.layout.hop_port('app')}",
            "LISTEN": f"127.0.0.1:{self.port}",
            "EDGE_CACHE_DIR": str(self.dir / "cache"),  # the micro-cache's files; nginx creates the folder
            **self.limits.template_values(),
        }
        (self.dir / "refstack.conf").write_text(render_template(NGINX_TEMPLATE.read_text(), values))
        user = "user root;\n" if os.geteuid() == 0 else ""
        (self.dir / "nginx.conf").write_text(NGINX_MAIN.format(user=user, prefix=self.dir))
        check = subprocess.run(
            ["nginx", "-t", "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            raise StackError(f"nginx config rejected:\n{check.stderr}")

    def _ready(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.port}/nginx-health")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
