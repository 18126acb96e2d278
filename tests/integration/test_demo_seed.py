"""``make up`` seeds demo data a newcomer can use at once: the printed accounts log in, events are listed.

See notes/rest_design.md ("Resources as built").
"""

from __future__ import annotations

import json

from stack.native.stack import NativeStack
from tests.api_users import password_login
from tests.probes import http

DEMO_PASSWORD = "refstack-demo"


def test_demo_accounts_log_in_with_the_printed_password(stack: NativeStack) -> None:
    for email, role in (("organizer@example.com", "organizer"), ("user@example.com", "user")):
        status, _, body = password_login(stack, email, DEMO_PASSWORD)
        assert status == 200, body
        token = json.loads(body)["access_token"]
        me = json.loads(http("GET", f"{stack.nginx.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})[2])
        assert me["role"] == role


def test_demo_events_are_listed_with_free_seats(stack: NativeStack) -> None:
    status, _, body = http("GET", f"{stack.nginx.url}/api/v1/events?city=Berlin")
    assert status == 200
    titles = {item["title"]: item["seats_available"] for item in json.loads(body)["items"]}
    assert titles.get("Flash Sale Live", 0) > 0  # not exact: the contract fuzzer may hold demo seats in one run


def test_seeding_again_changes_nothing(stack: NativeStack) -> None:
    count = (
        "select count(*) from event e join app_user u on u.id = e.organizer_id where u.email = 'organizer@example.com'"
    )
    before = stack.primary.sql(count, database="refstack")
    stack.seed()
    assert stack.primary.sql(count, database="refstack") == before
