"""The ReplicaRouter against the real streaming replica, through Nginx.

The claims (notes/db_scaling.md, "ReplicaRouter"): with replay paused the replica really is stale (the lab, read
on the replica directly) while the user who just booked still sees the booking, because the router sent that
read to the primary; a replica stopped or frozen costs no request more than 2 s and no 5xx (reads move to the
primary within the check timeout); once it is back, reads go to it again (counted on /metrics).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, create_event, new_user
from tests.fault_injector import FaultInjector
from tests.polling import wait_for
from tests.probes import http

pytestmark = pytest.mark.fault
ANSWER_WITHIN_S = 2.0


def routed(stack: NativeStack) -> dict[tuple[str, str], float]:
    """``db_reads_routed_total`` summed over workers, by (target, reason)."""
    _, _, body = http("GET", f"{stack.app.url}/metrics")
    return {
        (sample.labels["target"], sample.labels["reason"]): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == "db_reads_routed_total"
    }


def count(stack: NativeStack, target: str, reason: str | None = None) -> float:
    return sum(v for (t, r), v in routed(stack).items() if t == target and reason in (None, r))


def hold_seats(stack: NativeStack, user: ApiUser, event: dict[str, Any], seats: int = 1) -> dict[str, Any]:
    _, _, listing = call(stack, "GET", f"/api/v1/events/{event['id']}/seats")
    seat_ids = [seat["id"] for seat in listing["items"] if seat["status"] == "available"][:seats]
    status, _, hold = call(stack, "POST", f"/api/v1/events/{event['id']}/holds", user=user, body={"seat_ids": seat_ids})
    assert status == 201, hold
    return dict(hold)


def book(stack: NativeStack, user: ApiUser, hold: dict[str, Any]) -> dict[str, Any]:
    status, _, booking = call(stack, "POST", "/api/v1/bookings", user=user, body={"hold_id": hold["id"]})
    assert status == 201, booking
    return dict(booking)


@pytest.fixture(scope="module")
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="organizer")


@pytest.mark.usefixtures("closed_breakers")  # the booking must not meet a breaker another test tripped
def test_own_booking_is_read_from_the_primary_while_the_replica_is_stale(
    stack: NativeStack, fault: FaultInjector, organizer: ApiUser
) -> None:
    user = new_user(stack, label="ryw")
    event = create_event(stack, organizer, rows=1, seats_per_row=4)
    hold = hold_seats(stack, user, event)
    wait_for(lambda: stack.replica.lag_bytes() == 0, timeout_s=10, what="replica caught up before the pause")
    fault("replica", "pause_replay")
    own_write_reads = count(stack, "primary", "own-write-not-replayed")

    booking = book(stack, user, hold)

    # The lab: the replica itself does not have the booking yet.
    on_replica = f"SELECT count(*) FROM booking WHERE id = '{booking['id']}'"
    assert stack.replica.sql(on_replica, database="refstack") == "0"
    # The router: the booker sees it at once, from the primary.
    status, _, mine = call(stack, "GET", "/api/v1/me/bookings", user=user)
    assert status == 200
    assert [item["id"] for item in mine["items"]] == [booking["id"]]
    status, _, read = call(stack, "GET", f"/api/v1/bookings/{booking['id']}", user=user)
    assert (status, read["id"]) == (200, booking["id"])
    assert count(stack, "primary", "own-write-not-replayed") >= own_write_reads + 2

    fault("replica", "resume_replay")
    wait_for(lambda: stack.replica.sql(on_replica, database="refstack") == "1", timeout_s=10, what="booking replayed")
    caught_up = count(stack, "replica", "caught-up")

    def served_by_replica() -> bool:
        status, _, again = call(stack, "GET", "/api/v1/me/bookings", user=user)
        assert status == 200
        assert [item["id"] for item in again["items"]] == [booking["id"]]
        return count(stack, "replica", "caught-up") > caught_up

    wait_for(served_by_replica, timeout_s=10, what="the booker's reads back on the replica once it replayed")


@pytest.mark.parametrize(("verb", "restore"), [("stop", "start"), ("pause", "resume")])
def test_reads_survive_a_replica_that_is_gone_and_return_to_it(
    stack: NativeStack, fault: FaultInjector, organizer: ApiUser, verb: str, restore: str
) -> None:
    user = new_user(stack, label="reader")
    event = create_event(stack, organizer)
    paths = [f"/api/v1/events?city={event['city']}", f"/api/v1/events/{event['id']}", "/api/v1/me/bookings"]
    fault("replica", verb)
    replica_down = count(stack, "primary", "replica-down")

    for round_ in range(10):
        for path in paths:
            began = time.monotonic()
            status, _, body = http("GET", f"{stack.nginx.url}{path}", headers=user.headers)
            elapsed = time.monotonic() - began
            assert status == 200, (round_, path, status, body)
            assert elapsed < ANSWER_WITHIN_S, (round_, path, elapsed)
    assert json.loads(body)["items"] == []
    assert count(stack, "primary", "replica-down") > replica_down

    fault("replica", restore)
    on_replica = count(stack, "replica")

    def served_by_replica() -> bool:
        assert http("GET", f"{stack.nginx.url}{paths[0]}")[0] == 200
        return count(stack, "replica") > on_replica

    wait_for(served_by_replica, timeout_s=15, what=f"reads back on the replica after {restore}")
