"""The contract, fuzzed as an outsider would: schemathesis' own command line reads ``/openapi.json`` through Nginx
from the session stack and runs every phase it has against it, as an organizer (so authenticated paths are
explored too, not only their 401s).

The phases: ``examples`` (the schema's own examples), ``coverage`` (each constraint's boundaries, one value past
each, every undeclared method), ``fuzzing`` (Hypothesis-drawn requests, valid and invalid) and ``stateful``
(sequences that feed one answer's ids into the next request). Every check runs (``-c all``): no 5xx, each answer
matches the schema declared for its status and media type, a schema-valid request is not refused with a 4xx such
as 422 (the schema states every constraint the server enforces; the few no keyword can state are listed, with
their reasons, in tests/security/schemathesis.toml), a schema-invalid one is not accepted, an undeclared method is
a 405 whose ``Allow`` names the path's methods, a request without its token is refused.

Reproducible: one seed, no example database. ``make test`` runs the fixed ``SEED`` with few examples;
``make fuzz`` runs many more with a fresh seed that it prints, and ``REFSTACK_FUZZ_SEED=<seed> make fuzz`` replays
that run. See notes/security.md, "Fuzzing the contract".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.main import create_app
from app.settings import Settings
from stack.native.stack import NativeStack
from tests.api_users import call, new_user

SEED = 20261125
MAX_EXAMPLES = 10  # per operation and phase in `make test`; `make fuzz` sets REFSTACK_FUZZ_EXAMPLES
PHASES = "examples,coverage,fuzzing,stateful"
CONFIG = Path(__file__).with_name("schemathesis.toml")
RUN_BOUND_S = float(os.environ.get("REFSTACK_FUZZ_BOUND_S", "100"))  # `make fuzz` allows more


def fuzz_command(base_url: str, authorization: str, seed: int, max_examples: int) -> list[str]:
    """Schemathesis' command line, as a client of the API would run it: only the served schema and a token."""
    return [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "--no-color"),
        *("run", f"{base_url}/openapi.json", "--phases", PHASES, "--checks", "all"),
        *("--seed", str(seed), "--max-examples", str(max_examples), "--generation-database", "none"),
        *("--header", f"Authorization: {authorization}", "--workers", "1", "--request-timeout", "10"),
    ]


@pytest.mark.timeout(RUN_BOUND_S + 60)
def test_every_phase_keeps_the_contract(stack: NativeStack) -> None:
    status, _, served = call(stack, "GET", "/openapi.json")
    assert (status, served) == (200, create_app(Settings()).openapi()), "Nginx serves another contract than the app's"
    organizer = new_user(stack, organizer=True, label="fuzz-organizer")
    seed = int(os.environ.get("REFSTACK_FUZZ_SEED", SEED))
    max_examples = int(os.environ.get("REFSTACK_FUZZ_EXAMPLES", MAX_EXAMPLES))
    command = fuzz_command(stack.nginx.url, organizer.headers["Authorization"], seed, max_examples)
    run = subprocess.run(command, capture_output=True, text=True, timeout=RUN_BOUND_S, check=False)
    print(run.stdout[-20_000:], run.stderr[-5_000:])
    assert run.returncode == 0, f"schemathesis found contract failures with seed {seed} (output above)"
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in run.stdout, f"the {phase} phase did not run and pass"
    assert "✅ Examples" in run.stdout or "⏭  Examples" in run.stdout  # skipped: the schema declares no examples
