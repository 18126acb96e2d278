"""API10:2023 Unsafe consumption of APIs: a reply from the payment provider is input, validated and bounded.

Through Nginx against the real simulator, programmed to charge as usual but answer with a body refstack must not
trust: not JSON, JSON of another shape, or a well-formed charge padded to 10 MB. Each booking is a clean 503
problem saying the charge happened at most once (never a 500, never a trace); the hold stays ``paying`` because
the provider did charge; once the provider answers properly, the same booking completes on that one charge.
See notes/security.md, "Unsafe consumption of APIs".
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

import pytest

from stack.native.stack import NativeStack
from tests.api_users import ApiUser, new_user
from tests.integration.test_bookings_api import book, charges, held, program, simulator, sql
from tests.probes import wait_for

__all__ = ["simulator"]  # the fixture, shared with the bookings tests

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}


@pytest.fixture(scope="module")
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="api10-organizer")


@pytest.mark.parametrize("garble", ["not_json", "wrong_schema", "huge"])
def test_an_untrustworthy_reply_is_an_unknown_outcome_settled_by_the_next_try(
    stack: NativeStack, organizer: ApiUser, simulator: str, garble: str
) -> None:
    buyer = new_user(stack, label="api10-buyer")
    hold = held(stack, organizer, buyer)
    program(simulator, garble=garble)

    def charge_sent() -> tuple[int, Mapping[str, str], bytes] | None:
        """A booking whose charge reached the provider. An earlier test may have left a worker's breaker open: it
        refuses without sending ("nothing was charged", the hold goes back to active) until its 2 s reset."""
        answer = book(stack, buyer, hold["id"], key=f"k-{uuid.uuid4()}")
        return answer if b"charged at most once" in answer[2] or answer[0] != 503 else None

    status, headers, body = wait_for(charge_sent, timeout_s=10, what="a charge sent to the provider")

    assert status == 503, body
    assert headers["Content-Type"] == "application/problem+json"
    problem = json.loads(body)
    assert set(problem) == PROBLEM_KEYS
    assert problem["type"].endswith("/payment-provider-unavailable")
    assert "at most once" in problem["detail"]
    assert sql(stack, f"select status from hold where id = '{hold['id']}'") == "paying"
    assert len(charges(simulator, hold["id"])) == 1  # the provider charged; only its answer was broken

    program(simulator)
    retry_key = f"k-{uuid.uuid4()}"
    # the broken replies count as failures: this worker's breaker may stay open for its reset time (2 s in tests)
    wait_for(
        lambda: book(stack, buyer, hold["id"], key=retry_key)[0] == 201, timeout_s=10, what="booking on the one charge"
    )
    assert len(charges(simulator, hold["id"])) == 1
