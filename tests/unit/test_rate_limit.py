"""GCRA without Redis: the burst, the steady rate, what a refusal says, the header fields and the published 429.

The same steps run in Redis as a Lua script; tests/integration/test_rate_limits.py proves that script against the
real server. See notes/redis.md, "Rate limits in one round trip".
"""

from __future__ import annotations

import pytest

from app.api.rate_limits import BOOKINGS_LIMIT, HOLDS_LIMIT, WhenRedisIsDown, ratelimit_fields
from app.domain.rate_limit import RatePolicy, Verdict, gcra
from app.main import create_app
from app.settings import Settings

FIVE_PER_SECOND = RatePolicy("holds", quota=5, window_s=1)  # one request's worth of time: 200 ms


def run(policy: RatePolicy, times_ms: list[int]) -> list[Verdict]:
    tat: int | None = None
    verdicts = []
    for now in times_ms:
        verdict, stored = gcra(policy, tat, now)
        tat = stored if stored is not None else tat
        verdicts.append(verdict)
    return verdicts


def test_a_full_quota_passes_back_to_back_then_the_next_is_refused() -> None:
    verdicts = run(FIVE_PER_SECOND, [1_000] * 7)
    assert [v.allowed for v in verdicts] == [True] * 5 + [False] * 2
    assert [v.remaining for v in verdicts] == [4, 3, 2, 1, 0, 0, 0]
    assert [v.reset_ms for v in verdicts] == [200, 400, 600, 800, 1000, 1000, 1000]
    assert verdicts[5].retry_after_ms == 200  # one interval until the next request fits


def test_after_the_burst_one_request_per_interval_and_no_more() -> None:
    """Each interval after the burst buys exactly one request: a second one at the same instant is refused."""
    steady = [instant for n in range(1, 6) for instant in (1_000 + 200 * n,) * 2]
    verdicts = run(FIVE_PER_SECOND, [1_000] * 5 + steady)[5:]
    assert [v.allowed for v in verdicts] == [True, False] * 5
    assert [v.retry_after_ms for v in verdicts] == [0, 200] * 5
    assert [v.remaining for v in verdicts] == [0, 0] * 5


def test_a_refused_request_costs_nothing() -> None:
    """Hammering while refused does not push the next slot further out (a refusal stores no new TAT)."""
    verdicts = run(FIVE_PER_SECOND, [1_000] * 5 + [1_050] * 100 + [1_200])
    assert verdicts[-1].allowed
    assert verdicts[-2].retry_after_ms == 150


def test_idle_time_refills_up_to_the_quota_and_never_beyond() -> None:
    verdicts = run(FIVE_PER_SECOND, [1_000] * 5 + [61_000] * 6)
    assert [v.allowed for v in verdicts[5:]] == [True] * 5 + [False]
    assert verdicts[5].remaining == 4  # a full quota after a long idle, not an hour's worth


def test_a_policy_refuses_a_quota_finer_than_a_millisecond() -> None:
    with pytest.raises(ValueError, match="quota"):
        RatePolicy("x", quota=2000, window_s=1)
    with pytest.raises(ValueError, match="quota"):
        RatePolicy("x", quota=0, window_s=60)


def test_the_fields_follow_the_ietf_draft_syntax() -> None:
    policy = RatePolicy("holds", quota=120, window_s=60)
    admitted = Verdict(allowed=True, remaining=118, retry_after_ms=0, reset_ms=1_000)
    refused = Verdict(allowed=False, remaining=0, retry_after_ms=1, reset_ms=60_000)
    assert ratelimit_fields(policy, admitted) == {
        "RateLimit-Policy": '"holds";q=120;w=60',
        "RateLimit": '"holds";r=118;t=1',
    }
    assert ratelimit_fields(policy, refused)["RateLimit"] == '"holds";r=0;t=1'  # rounded up, never 0


def test_defaults_are_far_above_what_a_person_or_the_contention_test_sends() -> None:
    settings = Settings()
    assert HOLDS_LIMIT.policy(settings) == RatePolicy("holds", quota=120, window_s=60)
    assert BOOKINGS_LIMIT.policy(settings) == RatePolicy("bookings", quota=60, window_s=60)
    assert HOLDS_LIMIT.when_redis_is_down is WhenRedisIsDown.FAIL_OPEN
    assert BOOKINGS_LIMIT.when_redis_is_down is WhenRedisIsDown.FAIL_CLOSED


def test_the_schema_declares_the_429_on_exactly_the_limited_operations() -> None:
    document = create_app(Settings()).openapi()
    limited = sorted(
        operation["operationId"]
        for path_item in document["paths"].values()
        for operation in path_item.values()
        if "429" in operation.get("responses", {})
    )
    assert limited == ["bookings_book", "holds_place"]
    declared = document["paths"]["/api/v1/events/{event_id}/holds"]["post"]["responses"]["429"]
    assert declared["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert declared["headers"]["Retry-After"]["required"] is True
    assert set(declared["headers"]) == {"Retry-After", "RateLimit-Policy", "RateLimit"}
