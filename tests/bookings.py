"""Steps the tests that pay share: program the payment-provider simulator, read its ledger, hold seats, book them.

Why a module of its own: the bookings, reconciler and OWASP tests all take these steps, and a test module is no
library (importing one ties the importer to its internals, and a fixture imported by name is a second definition
that linters see as unused). The fixtures that go with these steps (the simulator reset around each test, closed
payments breakers) are the plugin tests/fix_payments.py. See notes/rest_design.md ("Idempotency keys") and
notes/fault_tolerance.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, create_event
from tests.probes import http


def program(simulator: str, **behaviour: object) -> None:
    """Make the simulator behave so (latency, errors, garbled replies, ...) until the next program or reset."""
    status, _, body = http(
        "PUT",
        f"{simulator}/_sim/behaviour",
        body=json.dumps(behaviour).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 200, body


def charges(simulator: str, hold_id: str) -> list[dict[str, Any]]:
    """The succeeded charges the provider made for this hold (under any of its idempotency keys)."""
    items = json.loads(http("GET", f"{simulator}/_sim/charges")[2])["items"]
    return [c for c in items if c["idempotency_key"].startswith(f"hold-{hold_id}-") and c["status"] == "succeeded"]


def held(stack: NativeStack, organizer: ApiUser, user: ApiUser, seats: int = 2) -> dict[str, Any]:
    """A new event at 25.00 a seat, and ``user``'s hold on its first ``seats`` seats."""
    event = create_event(stack, organizer, price_cents=2500)
    status, _, listing = call(stack, "GET", f"/api/v1/events/{event['id']}/seats")
    assert status == 200
    seat_ids = [seat["id"] for seat in listing["items"][:seats]]
    status, _, hold = call(stack, "POST", f"/api/v1/events/{event['id']}/holds", user=user, body={"seat_ids": seat_ids})
    assert status == 201, hold
    return dict(hold)


def book(
    stack: NativeStack,
    user: ApiUser,
    hold_id: str,
    *,
    key: str | None = None,
    card: str | None = None,
    direct: bool = False,
) -> tuple[int, Mapping[str, str], bytes]:
    """POST /api/v1/bookings through Nginx (or, ``direct``, on a new connection to the app's own port, which any
    of its workers may accept): (status, headers, body)."""
    body = {"hold_id": hold_id, **({"card_token": card} if card else {})}
    headers = {"Content-Type": "application/json", **user.headers, **({"Idempotency-Key": key} if key else {})}
    base = stack.app.url if direct else stack.nginx.url
    return http("POST", f"{base}/api/v1/bookings", body=json.dumps(body).encode(), headers=headers)


def sql(stack: NativeStack, statement: str) -> str:
    """One statement on the primary's refstack database, as psql prints its result."""
    return stack.primary.sql(statement, database="refstack")
