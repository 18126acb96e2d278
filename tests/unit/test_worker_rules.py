"""The worker's pure rules, no services: the topology's names and tiers (and the production defaults), that every
message type is routed, which receiver answers are retried, how a notification reads, and webhook signatures that
match the Standard Webhooks reference vector. See notes/rabbitmq.md.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from app.messaging.envelope import MESSAGE_TYPES, Envelope
from app.messaging.topology import BINDINGS, ConsumerQueues, consumer_queues, retry_queue
from app.security.webhook_signing import derive_secret, shown_secret, signature_headers
from app.services.notifications import render
from app.services.webhook_deliveries import retried
from app.settings import Settings


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more."""
    regex = re.escape(pattern).replace(r"\#", ".*").replace(r"\*", "[^.]+")
    return re.fullmatch(regex.replace(r"\..*", r"(\..*)?"), routing_key) is not None


def test_production_tiers_are_1_10_60_seconds_and_five_deliveries() -> None:
    settings = Settings()
    assert (settings.worker_retry_delays_s, settings.worker_delivery_limit) == ([1.0, 10.0, 60.0], 5)
    queues = consumer_queues("notifications", settings)
    assert [queues.after_failure(n) for n in (1, 2, 3, 4, 9)] == [
        "notifications.retry.1000ms",
        "notifications.retry.10000ms",
        "notifications.retry.60000ms",
        "notifications.parking",
        "notifications.parking",
    ]


def test_a_message_goes_to_a_tier_only_after_a_failure() -> None:
    with pytest.raises(ValueError, match="only after"):
        ConsumerQueues("webhooks", (0.2,)).after_failure(0)
    assert retry_queue("webhooks", 0.2) == "webhooks.retry.200ms"


@pytest.mark.parametrize("delays", ["[10, 1]", "[1, 1]", "[0]", "[]"])
def test_tiers_must_grow_strictly(delays: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFSTACK_WORKER_RETRY_DELAYS_S", delays)
    with pytest.raises(ValidationError):
        Settings()


def test_every_message_type_has_a_queue() -> None:
    routed = {t for t in MESSAGE_TYPES for keys in BINDINGS.values() if any(topic_matches(k, t) for k in keys)}
    assert routed == set(MESSAGE_TYPES)
    assert topic_matches("hold.#", "hold.placed")
    assert not topic_matches("booking.confirmed", "booking.cancelled")


@pytest.mark.parametrize(("status", "again"), [(500, True), (503, True), (408, True), (429, True), (400, False),
                                               (404, False), (410, False), (301, False)])  # fmt: skip
def test_only_a_receiver_that_may_recover_is_asked_again(status: int, again: bool) -> None:
    assert retried(status) is again


def envelope(message_type: str, payload: Mapping[str, object]) -> Envelope:
    return Envelope(
        id=uuid.uuid4(), type=message_type, version=1, occurred_at=datetime.now(UTC), aggregate_type="hold",
        aggregate_id=uuid.uuid4(), request_id=None, traceparent=None, payload=dict(payload),
    )  # fmt: skip


def test_notifications_read_as_the_buyer_is_told() -> None:
    ids = {name: str(uuid.uuid4()) for name in ("hold_id", "event_id", "user_id", "booking_id")}
    booked = render(envelope("booking.confirmed", {**ids, "amount_cents": 5050, "seat_ids": [str(uuid.uuid4())]}))
    assert booked is not None
    assert (booked.kind, booked.text) == ("booking-confirmed", "Booking confirmed: 1 seat(s), 50.50 paid.")
    hold = {k: ids[k] for k in ("hold_id", "event_id", "user_id")}
    expired = render(envelope("hold.expired", hold))
    assert expired is not None
    assert expired.kind == "hold-expired"
    settled = render(envelope("payment.settled", {**hold, "outcome": "released", "booking_id": None}))
    assert settled is not None
    assert (settled.kind, settled.booking_id) == ("payment-settled", None)
    assert render(envelope("hold.placed", {**hold, "seat_ids": [], "expires_at": "2027-01-01T00:00:00Z"})) is None


def test_signatures_match_the_standard_webhooks_reference_vector() -> None:
    """The vector every Standard Webhooks library tests against: a receiver using one of them accepts ours."""
    secret = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    headers = signature_headers(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_each_webhook_secret_comes_from_its_salt_and_the_server_key() -> None:
    key = "k" * 32
    assert derive_secret(key, b"salt-a") == derive_secret(key, b"salt-a")
    assert derive_secret(key, b"salt-a") != derive_secret(key, b"salt-b")
    assert derive_secret(key, b"salt-a") != derive_secret("j" * 32, b"salt-a")
    assert shown_secret(b"\x00" * 32) == "whsec_" + "A" * 43 + "="
