"""The OpenAPI document states the rules the server enforces, from the same constants, so they cannot drift apart.

Each rule checked here lives in code that is not a pydantic constraint (a domain check, a password policy, the
cursor codec, FastAPI's form reading) and is declared in the schema by hand; this pins each declaration to its
source. The contract fuzzer (tests/security/test_contract_fuzz.py) then proves the server keeps them. No service
runs. See notes/rest_design.md, "The contract".
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import AwareDatetime, TypeAdapter

from app.api.pagination import encode_cursor
from app.main import create_app
from app.security.passwords import MAX_LENGTH, MIN_LENGTH, password_problems
from app.settings import Settings


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Settings()).openapi()


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def test_each_operation_id_is_its_tag_and_route_function_unique(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for path_item in document["paths"].values() for operation in path_item.values()]
    assert [name for name, count in Counter(ids).items() if count > 1] == []
    assert all(re.fullmatch(r"[a-z]+_[a-z_]+", operation_id) for operation_id in ids), ids
    for route in iter_route_contexts(create_app(Settings()).routes):
        if isinstance(route.original_route, APIRoute) and route.include_in_schema:
            for method in route.methods or ():
                declared = document["paths"][route.path_format][method.lower()]["operationId"]
                assert declared == f"{route.tags[0]}_{str(route.name).rstrip('_')}", route.path_format


def test_a_hold_states_the_seat_count_the_server_allows(document: dict[str, Any]) -> None:
    seat_ids = schema(document, "HoldIn")["properties"]["seat_ids"]
    assert (seat_ids["minItems"], seat_ids["maxItems"]) == (1, Settings().max_seats_per_hold)
    assert seat_ids["uniqueItems"] is True


def test_the_password_length_is_the_policys(document: dict[str, Any]) -> None:
    password = schema(document, "Registration")["properties"]["password"]
    assert (password["minLength"], password["maxLength"]) == (MIN_LENGTH, MAX_LENGTH)
    stem = "Tr0ub4dor&3-horse-battery-staple-" * 8
    assert password_problems(stem[:MIN_LENGTH], "someone@example.com") == []
    assert password_problems(stem[:MAX_LENGTH], "someone@example.com") == []
    assert password_problems(stem[: MIN_LENGTH - 1], "someone@example.com") != []
    assert password_problems(stem[: MAX_LENGTH + 1], "someone@example.com") != []


def test_the_login_form_declares_that_empty_fields_are_missing(document: dict[str, Any]) -> None:
    form = schema(document, "Body_auth_token")
    assert form["required"] == ["username", "password"]
    assert form["properties"]["username"]["minLength"] == form["properties"]["password"]["minLength"] == 1
    assert form["properties"]["grant_type"] == {"type": "string", "const": "password", "title": "Grant Type"}


def test_a_refresh_token_is_any_string(document: dict[str, Any]) -> None:
    assert schema(document, "RefreshTokenIn")["properties"]["refresh_token"] == {
        "type": "string",
        "title": "Refresh Token",
    }


def test_every_cursor_the_server_writes_fits_the_declared_pattern(document: dict[str, Any]) -> None:
    key_shape: TypeAdapter[tuple[AwareDatetime, uuid.UUID]] = TypeAdapter(tuple[AwareDatetime, uuid.UUID])
    cursor = encode_cursor((datetime(2027, 6, 1, 20, tzinfo=UTC), uuid.uuid4()), key_shape)
    for path in ("/api/v1/events", "/api/v1/me/bookings"):
        declared = next(p for p in document["paths"][path]["get"]["parameters"] if p["name"] == "cursor")
        pattern = declared["schema"]["anyOf"][0]["pattern"]
        assert re.fullmatch(pattern, cursor), (path, pattern, cursor)


def test_every_read_that_takes_if_none_match_states_its_304(document: dict[str, Any]) -> None:
    conditional = {
        (path, method): operation["responses"]
        for path, path_item in document["paths"].items()
        for method, operation in path_item.items()
        if any(parameter["name"] == "If-None-Match" for parameter in operation.get("parameters", []))
    }
    assert set(conditional) == {("/api/v1/events/{event_id}", "get"), ("/api/v1/bookings/{booking_id}", "get")}
    for responses in conditional.values():
        assert "ETag" in responses["304"]["headers"]
        assert "content" not in responses["304"]  # no body
