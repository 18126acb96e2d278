"""Which provider runs the services: ``REFSTACK_PROVIDER=native|docker|auto`` (default ``native``).

Why a choice at all: on a Docker host the data services should be the real images compose runs; on a machine
without an engine (like the ones refstack is developed on) the native provider runs the same services as private
processes. ``auto`` asks the engine for a ping with a one-second bound and falls back to native.
See notes/docker.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from stack.base import StackError

Provider = Literal["native", "docker"]
CHOICES = ("native", "docker", "auto")


def choose_provider(environ: Mapping[str, str] = os.environ, *, engine_timeout_s: float = 1.0) -> Provider:
    """Resolve the setting; ``docker`` without an answering engine is an error naming the way out."""
    from stack.docker_provider import docker_engine_available

    wanted = environ.get("REFSTACK_PROVIDER", "native")
    if wanted not in CHOICES:
        raise StackError(f"REFSTACK_PROVIDER must be one of {', '.join(CHOICES)}, not {wanted!r}")
    if wanted == "native":
        return "native"
    if docker_engine_available(timeout_s=engine_timeout_s):
        return "docker"
    if wanted == "docker":
        raise StackError("REFSTACK_PROVIDER=docker but no Docker engine answers; use native (the default) or auto")
    return "native"
