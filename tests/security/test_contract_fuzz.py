"""The contract, fuzzed: schemathesis generates requests from the OpenAPI document and sends them through Nginx to
the session stack, as an organizer (so authenticated paths are explored too, not only their 401s).

What must hold for every answer: no 5xx (``not_a_server_error``), the body matches the schema declared for its
status (``response_schema_conformance``), and its media type is a declared one (``content_type_conformance``). Errors
are declared as ``application/problem+json`` by app/api/openapi.py, so a problem answer is checked like any
other. Each operation is fuzzed with valid (positive) and invalid (negative) requests, ``MAX_EXAMPLES`` of each.

The document is built from the app object at collection time (so each operation is its own test id) and checked
once against the one Nginx serves. Deterministic: one fixed seed, Hypothesis' derandomized mode, no example
database, so CI replays the same requests on every run. See notes/security.md, "Fuzzing the contract".
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from app.main import create_app
from app.settings import Settings
from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, new_user

MAX_EXAMPLES = 8
SEED = 20261125
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
DOCUMENT = create_app(Settings()).openapi()
CONTRACT = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {"seed": SEED, "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"}}
    ),
)
OPERATIONS = [result.ok() for result in CONTRACT.get_all_operations()]  # type: ignore[union-attr]


def takes_input(operation: Any) -> bool:
    """Whether a body, path or query can be made invalid; a free-text header alone gives negative mode nothing."""
    declared = DOCUMENT["paths"][operation.path][operation.method.lower()]
    varied = [p for p in declared.get("parameters", []) if p["in"] in ("path", "query")]
    return bool(varied or declared.get("requestBody"))


CASES = [
    pytest.param(operation, mode, id=f"{operation.label} {mode.value}")
    for operation in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or takes_input(operation)
]


@pytest.fixture(scope="module")
def fuzz_organizer(stack: NativeStack) -> ApiUser:
    status, _, served = call(stack, "GET", "/openapi.json")
    assert (status, served) == (200, DOCUMENT), "Nginx serves another contract than the one fuzzed here"
    return new_user(stack, organizer=True, label="fuzz-organizer")


@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_every_operation_keeps_its_contract(
    stack: NativeStack, fuzz_organizer: ApiUser, operation: Any, mode: GenerationMode
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # a failure is reported as found: shrinking would cost requests
        suppress_health_check=list(HealthCheck),
    )
    def keeps_contract(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(base_url=stack.nginx.url, headers=fuzz_organizer.headers, checks=CHECKS, timeout=10)

    keeps_contract()
