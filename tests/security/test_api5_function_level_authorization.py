"""API5:2023 Broken function-level authorization: a plain user calls every organizer-only operation and gets 403.

The list is not kept by hand: the live OpenAPI document marks each operation whose dependencies include the
organizer guard with ``x-required-role`` (app/api/openapi.py walks the dependency tree), and every write operation
must either carry that mark or be one of the few writes a plain user is meant to make (``USER_WRITES``). A new
write route therefore fails here until someone decides who may call it. Through Nginx.
See notes/security.md, "Function-level authorization".
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, create_event, new_user

WRITE_METHODS = {"post", "put", "patch", "delete"}
USER_WRITES = {
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/token"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("post", "/api/v1/events/{event_id}/holds"),
    ("delete", "/api/v1/holds/{hold_id}"),
    ("post", "/api/v1/bookings"),
}


@pytest.fixture(scope="module")
def operations(stack: NativeStack) -> dict[tuple[str, str], dict[str, Any]]:
    status, _, document = call(stack, "GET", "/openapi.json")
    assert status == 200
    return {(method, path): op for path, item in document["paths"].items() for method, op in item.items()}


def organizer_only(operations: dict[tuple[str, str], dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted(key for key, op in operations.items() if op.get("x-required-role") == "organizer")


def test_every_write_is_either_organizer_only_or_a_known_user_write(
    operations: dict[tuple[str, str], dict[str, Any]],
) -> None:
    writes = {key for key in operations if key[0] in WRITE_METHODS}
    unmarked = writes - set(organizer_only(operations))
    assert ("post", "/api/v1/events") in organizer_only(operations)
    assert unmarked == USER_WRITES, "decide who may call each new write route"


def test_a_plain_user_gets_403_from_every_organizer_only_operation(
    stack: NativeStack, operations: dict[tuple[str, str], dict[str, Any]]
) -> None:
    organizer = new_user(stack, organizer=True, label="api5-organizer")
    user: ApiUser = new_user(stack, label="api5-user")
    event = create_event(stack, organizer)
    for method, path in organizer_only(operations):
        concrete = re.sub(r"\{event_id\}", event["id"], path)
        assert "{" not in concrete, f"no value to fill into {path}"
        status, _, problem = call(stack, method.upper(), concrete, user=user, body={}, headers={"If-Match": "*"})
        assert status == 403, (method, path, problem)
        assert problem["type"].endswith("/forbidden")
    assert call(stack, "GET", f"/api/v1/events/{event['id']}")[2]["title"] == event["title"]
    assert call(stack, "GET", f"/api/v1/events/{event['id']}/webhook", user=organizer)[0] == 404
