"""``REFSTACK_PROVIDER`` resolves as documented on a machine without a Docker engine. See notes/docker.md."""

from __future__ import annotations

import time

import pytest

from stack.base import StackError
from stack.docker_provider import docker_engine_available
from stack.provider import choose_provider

pytestmark = pytest.mark.skipif(docker_engine_available(), reason="a Docker engine answers on this machine")


def test_native_is_the_default() -> None:
    assert choose_provider({}) == "native"


def test_auto_falls_back_to_native_within_a_second_or_so() -> None:
    began = time.monotonic()
    assert choose_provider({"REFSTACK_PROVIDER": "auto"}) == "native"
    assert time.monotonic() - began < 1.5


def test_docker_without_an_engine_is_a_clear_error() -> None:
    with pytest.raises(StackError, match="no Docker engine answers"):
        choose_provider({"REFSTACK_PROVIDER": "docker"})


def test_unknown_provider_lists_the_choices() -> None:
    with pytest.raises(StackError, match="native, docker, auto"):
        choose_provider({"REFSTACK_PROVIDER": "kubernetes"})
