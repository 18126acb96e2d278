"""The files that run on Docker hosts, checked with what runs here: Compose validates docker-compose.yml offline
(no engine needed), and the resolved model must say what notes/docker.md claims: every service, a startup chain
that waits for a healthy PostgreSQL and finished migrations, Nginx on the shared template. The Dockerfile and
.dockerignore are read as text: exec-form CMD, a healthcheck on /health/live, a non-root user, and a build
context that holds everything the Dockerfile copies.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack.native.web import EdgeLimits

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SERVICES = {"postgres", "replica", "redis", "rabbitmq", "payments", "migrate", "app", "worker", "nginx"}
SENTINEL = {"redis-sentinel-primary", "redis-sentinel-replica-1", "redis-sentinel-replica-2"} | {
    f"redis-sentinel-{n}" for n in (1, 2, 3)
}
CLUSTER_NODES = {f"redis-cluster-{n}" for n in range(1, 7)}
PROFILES = (
    {"elasticsearch": "search"}
    | dict.fromkeys(SENTINEL, "redis-sentinel")
    | dict.fromkeys(CLUSTER_NODES | {"redis-cluster-create"}, "redis-cluster")
)
SERVICES = DEFAULT_SERVICES | set(PROFILES)
NGINX_TEMPLATE_TARGET = "/etc/nginx/templates/default.conf.template"


def compose_command() -> list[str] | None:
    """``docker compose`` (v2 plugin) when it answers, else Debian's ``docker-compose`` (v1), else None."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.fixture(scope="module")
def compose() -> list[str]:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    return command


def run_config(compose: list[str], compose_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*compose, "-f", str(compose_file), "config", *extra],
        cwd=compose_file.parent,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture(scope="module")
def resolved(compose: list[str]) -> dict[str, Any]:
    result = run_config(compose, REPO / "docker-compose.yml")
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = yaml.safe_load(result.stdout)
    return model


def condition(service: dict[str, Any], dependency: str) -> str:
    return str(service["depends_on"][dependency]["condition"])


def bind_targets(service: dict[str, Any]) -> dict[str, str]:
    """target -> source for every bind mount, whichever of the two syntaxes this Compose version prints."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *_mode = volume.split(":")
        else:
            source, target = volume["source"], volume["target"]
        mounts[target] = source
    return mounts


def test_compose_file_is_valid(compose: list[str]) -> None:
    result = run_config(compose, REPO / "docker-compose.yml", "-q")
    assert result.returncode == 0, result.stderr


def test_the_validator_rejects_a_broken_dependency_condition(compose: list[str], tmp_path: Path) -> None:
    """A negative control: a pass above means something only if this Compose really checks conditions."""
    broken = (REPO / "docker-compose.yml").read_text().replace("service_healthy", "service_happy", 1)
    (tmp_path / "docker-compose.yml").write_text(broken)
    result = run_config(compose, tmp_path / "docker-compose.yml", "-q")
    assert result.returncode != 0
    assert "service_happy" in result.stderr or "condition" in result.stderr


def test_every_service_is_defined(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == SERVICES


def test_elasticsearch_and_the_redis_topologies_are_opt_in_through_profiles(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert {name: services[name]["profiles"] for name in PROFILES} == {
        name: [profile] for name, profile in PROFILES.items()
    }
    assert all("profiles" not in services[name] for name in DEFAULT_SERVICES)
    waited_on = {dependency for name in DEFAULT_SERVICES for dependency in services[name].get("depends_on", {})}
    assert waited_on <= DEFAULT_SERVICES, "the default profile must start without any opt-in service"


def test_the_sentinel_profile_watches_one_primary_with_a_quorum_of_two_of_three(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for replica in ("redis-sentinel-replica-1", "redis-sentinel-replica-2"):
        assert services[replica]["command"][-3:] == ["--replicaof", "redis-sentinel-primary", "6379"]
        assert condition(services[replica], "redis-sentinel-primary") == "service_healthy"
    sentinels = [services[f"redis-sentinel-{n}"] for n in (1, 2, 3)]
    for sentinel in sentinels:
        script = sentinel["command"][-1]
        assert "'sentinel monitor refstack redis-sentinel-primary 6379 2'" in script
        assert script.endswith("exec redis-server /tmp/sentinel.conf --sentinel")
        assert "26379" in sentinel["healthcheck"]["test"][-1]
    # No node restarts on its own: a primary with no persistence would come back empty and replicas would copy it.
    assert {services[name]["restart"] for name in SENTINEL} == {"no"}


def test_the_cluster_profile_makes_three_primaries_with_a_replica_each(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name in CLUSTER_NODES:
        script = services[name]["command"][-1]
        assert "--cluster-enabled yes" in script
        assert services[name]["hostname"] == name
        assert services[name]["restart"] == "no"
    create = services["redis-cluster-create"]
    assert {dependency: condition(create, dependency) for dependency in create["depends_on"]} == dict.fromkeys(
        CLUSTER_NODES, "service_healthy"
    )
    assert "--cluster create --cluster-replicas 1 --cluster-yes" in create["command"][-1]
    assert "for n in 1 2 3 4 5 6" in create["command"][-1]
    assert create["restart"] == "no"


def test_app_starts_only_after_migrations_ran_on_a_healthy_primary(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert condition(services["app"], "migrate") == "service_completed_successfully"
    assert condition(services["migrate"], "postgres") == "service_healthy"
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert services["migrate"]["command"] == ["sh", "-c", "alembic upgrade head && python -m app.seed"]
    assert services["migrate"]["restart"] == "no"
    assert condition(services["replica"], "postgres") == "service_healthy"
    assert condition(services["app"], "redis") == "service_healthy"
    assert condition(services["app"], "rabbitmq") == "service_healthy"
    assert condition(services["nginx"], "app") == "service_healthy"


def test_the_worker_runs_the_same_image_after_migrations_with_its_own_readiness(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    worker = services["worker"]
    assert worker["image"] == services["app"]["image"]
    assert worker["command"] == ["python", "-m", "app.worker"]
    assert condition(worker, "migrate") == "service_completed_successfully"
    assert condition(worker, "rabbitmq") == "service_healthy"
    port = worker["environment"]["REFSTACK_WORKER_HTTP_PORT"]
    assert worker["environment"]["HEALTHCHECK_URL"] == f"http://127.0.0.1:{port}/health/ready"
    assert {k: v for k, v in worker["environment"].items() if k.startswith("REFSTACK_") and "WORKER" not in k} == {
        k: v for k, v in services["app"]["environment"].items() if k.startswith("REFSTACK_")
    }


def test_every_service_waited_on_as_healthy_has_a_healthcheck(resolved: dict[str, Any]) -> None:
    """Waiting on a service with no healthcheck fails at `up`; ours is in compose or in our own image."""
    services = resolved["services"]
    image_has_one = any(word == "HEALTHCHECK" for word, _ in dockerfile_instructions())
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            if spec["condition"] != "service_healthy":
                continue
            target = services[dependency]
            healthcheck = target.get("healthcheck", {})
            assert not healthcheck.get("disable"), f"{name} waits on {dependency}, whose check is disabled"
            from_image = "build" in target and image_has_one
            assert "test" in healthcheck or from_image, f"{name} waits on {dependency}, which has no check"


def test_one_image_serves_app_migrations_and_simulator(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    images = {services[name]["image"] for name in ("app", "migrate", "payments")}
    assert len(images) == 1
    assert services["payments"]["command"][:3] == ["python", "-m", "simulators.payments"]
    assert services["app"]["init"] is True


def test_our_processes_run_on_a_read_only_root_with_no_capabilities(resolved: dict[str, Any]) -> None:
    for name in ("app", "migrate", "payments", "worker"):
        service = resolved["services"][name]
        assert service["read_only"] is True, name
        assert service["tmpfs"] == ["/tmp"], name
        assert service["cap_drop"] == ["ALL"], name
        assert service["security_opt"] == ["no-new-privileges:true"], name


def test_nginx_renders_the_shared_template(resolved: dict[str, Any]) -> None:
    nginx = resolved["services"]["nginx"]
    source = Path(bind_targets(nginx)[NGINX_TEMPLATE_TARGET])
    assert source == REPO / "nginx" / "refstack.conf.template"
    assert source.is_file()
    assert nginx["environment"]["APP_UPSTREAM"] == "app:8000"
    # Our placeholders are upper case; nginx's own variables ($request_id...) are lower case and must survive.
    placeholders = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", source.read_text()))
    assert placeholders == {"APP_UPSTREAM", "LISTEN", "EDGE_CACHE_DIR", *EdgeLimits().template_values()}
    assert placeholders <= set(nginx["environment"]), "an unset placeholder would reach nginx verbatim"
    limits = {name: str(nginx["environment"][name]) for name in EdgeLimits().template_values()}
    assert limits == EdgeLimits().template_values(), "compose and the native stack must limit alike"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (REPO / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.strip().partition(" ") for line in joined.splitlines() if line.strip())
    ]


def test_dockerfile_runs_uvicorn_unprivileged_in_exec_form_with_a_liveness_check() -> None:
    instructions = dockerfile_instructions()
    last = {word: rest for word, rest in instructions}
    assert last["CMD"].startswith('["uvicorn", "app.main:create_app", "--factory"')
    assert last["USER"] not in {"root", "0", "0:0"}
    assert "/health/live" in last["ENV"] + last["HEALTHCHECK"]
    assert "CMD [" in last["HEALTHCHECK"]
    assert any(word == "RUN" and "uv sync --frozen --no-dev" in rest for word, rest in instructions)


def test_build_context_holds_everything_the_dockerfile_copies() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        verdict = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            glob = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, glob) or path.startswith(glob + "/"):
                verdict = negated
        return verdict

    copied = [
        source
        for word, rest in dockerfile_instructions()
        if word == "COPY" and "--from=" not in rest
        for source in rest.split()[:-1]
    ]
    assert copied, "the Dockerfile copies nothing from the context"
    assert [source for source in copied if not included(source)] == []
    for private in (".venv", ".git", "tests", "notes"):
        assert not included(private), private
