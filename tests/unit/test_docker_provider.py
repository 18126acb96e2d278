"""What can be checked about the docker provider without a Docker engine: it answers fast when there is none,
its services speak the stack.base Protocols before anything starts, it agrees with docker-compose.yml, and the
pure parts (LSN arithmetic, socket URLs) are right. Starting containers is left to Docker hosts.
See notes/docker.md ("Prove it").
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack.base import ReplicaService, Service, StackError
from stack.docker_provider import (
    ContainerSpec,
    ContainerStack,
    docker_engine_available,
    parse_lsn,
    unix_socket_path,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def container_stack() -> ContainerStack:
    return ContainerStack()


@pytest.fixture
def deaf_port() -> Iterator[int]:
    """A port whose kernel completes the handshake but whose owner never accepts nor answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    return services


def healthcheck_argv(test: list[str]) -> tuple[str, ...]:
    """A compose healthcheck ``test`` as the argv ``docker exec`` would run."""
    kind, *rest = test
    return ("sh", "-c", *rest) if kind == "CMD-SHELL" else tuple(rest)


def test_engine_check_answers_within_its_timeout_on_this_machine() -> None:
    began = time.monotonic()
    available = docker_engine_available(timeout_s=1.0)
    assert time.monotonic() - began < 1.5
    assert isinstance(available, bool)


def test_engine_check_is_false_at_once_for_a_missing_socket(tmp_path: Path) -> None:
    began = time.monotonic()
    assert docker_engine_available(timeout_s=1.0, base_url=f"unix://{tmp_path / 'docker.sock'}") is False
    assert time.monotonic() - began < 1.5


def test_engine_check_gives_up_on_an_engine_that_never_answers(deaf_port: int) -> None:
    began = time.monotonic()
    assert docker_engine_available(timeout_s=0.3, base_url=f"tcp://127.0.0.1:{deaf_port}") is False
    assert 0.3 <= time.monotonic() - began < 1.5


def test_importing_the_provider_loads_neither_testcontainers_nor_the_docker_sdk() -> None:
    probe = (
        "import sys, stack.docker_provider; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'docker', 'testcontainers'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.strip() == "[]"


def test_services_satisfy_the_stack_protocols_before_starting(container_stack: ContainerStack) -> None:
    assert list(container_stack.services) == ["postgres", "replica", "redis", "rabbitmq"]
    for svc in container_stack.services.values():
        assert isinstance(svc, Service), svc.name
    assert isinstance(container_stack["replica"], ReplicaService)
    assert not isinstance(container_stack["postgres"], ReplicaService)


def test_clients_go_through_the_fault_proxy_and_setup_does_not(container_stack: ContainerStack) -> None:
    postgres = container_stack["postgres"]
    assert postgres.url == f"postgresql://app:app@127.0.0.1:{postgres.proxy_port}/refstack"
    assert postgres.direct_url == f"postgresql://app:app@127.0.0.1:{postgres.host_port}/refstack"
    ports = [port for svc in container_stack.services.values() for port in (svc.host_port, svc.proxy_port)]
    assert len(set(ports)) == len(ports)


def test_an_unstarted_service_has_no_pids_and_refuses_verbs_by_name(container_stack: ContainerStack) -> None:
    redis = container_stack["redis"]
    assert redis.pids == []
    with pytest.raises(StackError, match="redis: the container has not been started"):
        redis.pause()
    with pytest.raises(StackError, match=r"redis: the fault proxy .* did not answer 'slow redis 200'"):
        redis.slow(200)


@pytest.mark.parametrize("name", ["postgres", "replica", "redis", "rabbitmq"])
def test_each_container_matches_its_compose_service(container_stack: ContainerStack, name: str) -> None:
    spec: ContainerSpec = container_stack[name].spec
    service = compose_services()[name]
    assert spec.image == service["image"]
    assert spec.ready_command == healthcheck_argv(service["healthcheck"]["test"])
    assert spec.user == service.get("user")
    assert spec.entrypoint == (tuple(service["entrypoint"]) if "entrypoint" in service else None)
    assert spec.command == (tuple(service["command"]) if "command" in service else None)
    bind_mounts = [volume.split(":") for volume in service.get("volumes", []) if volume.startswith("./")]
    assert dict(spec.files) == {target: (REPO / source).resolve() for source, target, *_mode in bind_mounts}


def test_the_scripts_copied_into_containers_exist_and_are_executable(container_stack: ContainerStack) -> None:
    for svc in container_stack.services.values():
        for source in svc.spec.files.values():
            assert source.is_file(), source
            assert source.stat().st_mode & 0o111, f"{source} must be executable"


@pytest.mark.parametrize(
    ("text", "position"),
    [("0/0", 0), ("0/3000060", 0x3000060), ("16/B374D848", (0x16 << 32) + 0xB374D848), (" 1/0\n", 1 << 32)],
)
def test_lsn_is_a_byte_position(text: str, position: int) -> None:
    assert parse_lsn(text) == position


@pytest.mark.parametrize("text", ["", "16", "16/", "x/1", "1/2/3"])
def test_a_malformed_lsn_is_refused(text: str) -> None:
    with pytest.raises(StackError, match="not a PostgreSQL LSN"):
        parse_lsn(text)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        (None, "/var/run/docker.sock"),
        ("unix:///run/user/1000/docker.sock", "/run/user/1000/docker.sock"),
        ("http+unix:///var/run/docker.sock", "/var/run/docker.sock"),
        ("tcp://10.0.0.5:2375", None),
        ("ssh://deploy@builder", None),
    ],
)
def test_unix_socket_path(url: str | None, path: str | None) -> None:
    assert unix_socket_path(url) == path
