"""An organizer's webhook receives ``booking.confirmed``, signed, retried through the tiers while the receiver
fails, parked after the last one; the organizer reads every attempt at ``GET …/webhook/deliveries``.

The consumer runs in this process (the worker's own ``Consuming`` and ``WebhooksConsumer`` against the session's
real broker and database) because its receiver must be on the public internet, which cannot run here: the SSRF
policy refuses every loopback and private address, so ``SignedReceiver`` is a FAKE of the public receiver behind
``PUBLIC_IP``, as tests/security/test_api7_ssrf.py does it. The receiver checks each signature with its own code (the
Standard Webhooks recipe, not ours) and the replay window. The stack's worker is stopped meanwhile, so the
webhooks queue has one consumer, this one. See notes/rabbitmq.md, "What users receive".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import aio_pika
import httpx
import pytest
from prometheus_client import CollectorRegistry

from app.db.engines import Engines
from app.notifications.webhook_sender import WebhookSender
from app.security.outbound_urls import OutboundUrlPolicy
from app.services.unit_of_work import TransactionTimeouts, UnitOfWorkFactory
from app.services.webhook_deliveries import WebhooksConsumer
from app.settings import Settings
from app.worker.consumers import Subscription
from app.worker.consuming import Consuming
from app.worker.metrics import build_worker_metrics
from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, create_event, new_user
from tests.fault_injector import FaultInjector
from tests.messages import booking_confirmed, drain, publish
from tests.polling import wait_for_async

PUBLIC_IP = "93.184.215.14"  # a public address the fake receiver answers for; nothing leaves this machine
REPLAY_WINDOW_S = 300


@dataclass
class Received:
    webhook_id: str
    verified: bool
    body: bytes


@dataclass
class SignedReceiver(httpx.AsyncBaseTransport):
    """A FAKE public receiver: verifies each delivery with the organizer's secret, answers the next scripted status."""

    secret: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != PUBLIC_IP:
            raise httpx.ConnectError(f"no network here: {request.url.host}")
        body = await request.aread()
        self.received.append(Received(request.headers["webhook-id"], self.verify(request.headers, body), body))
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)

    def verify(self, headers: httpx.Headers, body: bytes) -> bool:
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        timestamp = headers["webhook-timestamp"]
        if abs(time.time() - int(timestamp)) > REPLAY_WINDOW_S:
            return False
        signed = f"{headers['webhook-id']}.{timestamp}.".encode() + body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        offered = [part.removeprefix("v1,") for part in headers["webhook-signature"].split() if part.startswith("v1,")]
        return any(hmac.compare_digest(expected, candidate) for candidate in offered)


@pytest.fixture
def settings(stack: NativeStack, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in stack.app_environment().items():
        monkeypatch.setenv(name, value)
    return Settings()


@pytest.fixture
def receiver() -> SignedReceiver:
    return SignedReceiver()


@pytest.fixture
async def consuming(
    stack: NativeStack, fault: FaultInjector, settings: Settings, receiver: SignedReceiver
) -> AsyncIterator[Consuming]:
    """The webhooks consumer in this process, the only one on its queue (the stack's worker stopped meanwhile)."""
    fault("worker", "stop")
    engines = Engines.open(settings)
    uows = UnitOfWorkFactory(engines.primary, TransactionTimeouts.of(settings))
    http = httpx.AsyncClient(transport=receiver, follow_redirects=False, trust_env=False, timeout=2.0)
    sender = WebhookSender(http, OutboundUrlPolicy(), max_redirects=3, deadline_s=5.0)
    attempts = 1 + len(settings.worker_retry_delays_s)
    consumer = WebhooksConsumer(sender, uows, signing_key=settings.webhook_signing_key, attempts=attempts)
    running = Consuming(settings, uows, [Subscription(consumer, prefetch=1)], build_worker_metrics(CollectorRegistry()))
    connection = await aio_pika.connect_robust(stack.rabbitmq.url)
    try:
        await running.start(connection)
        yield running
    finally:
        await running.stop()
        await connection.close()
        await sender.aclose()
        await engines.dispose()


@pytest.fixture
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="hooked")


@dataclass(frozen=True)
class Hooked:
    event_id: str
    secret: str


@pytest.fixture
def hooked(stack: NativeStack, organizer: ApiUser, receiver: SignedReceiver) -> Iterator[Hooked]:
    event = create_event(stack, organizer)
    url = f"https://{PUBLIC_IP}/hooks/refstack"
    status, _, body = call(stack, "PUT", f"/api/v1/events/{event['id']}/webhook", user=organizer, body={"url": url})
    assert status == 200, body
    receiver.secret = body["secret"]
    yield Hooked(event["id"], body["secret"])
    call(stack, "DELETE", f"/api/v1/events/{event['id']}/webhook", user=organizer)


def attempts(stack: NativeStack, organizer: ApiUser, event_id: str) -> list[tuple[int, str, int | None]]:
    status, _, page = call(stack, "GET", f"/api/v1/events/{event_id}/webhook/deliveries", user=organizer)
    assert status == 200, page
    return [(item["attempt"], item["outcome"], item["status_code"]) for item in page["items"]]


async def test_the_secret_is_shown_once_and_signs_the_delivery_the_receiver_verifies(
    stack: NativeStack, consuming: Consuming, organizer: ApiUser, hooked: Hooked, receiver: SignedReceiver
) -> None:
    assert hooked.secret.startswith("whsec_")
    assert len(base64.b64decode(hooked.secret.removeprefix("whsec_"))) == 32
    status, _, stored = call(stack, "GET", f"/api/v1/events/{hooked.event_id}/webhook", user=organizer)
    assert status == 200
    assert "secret" not in stored
    message = booking_confirmed(str(uuid.uuid4()), event_id=hooked.event_id)
    await publish(stack, message)

    async def delivered() -> bool:
        return attempts(stack, organizer, hooked.event_id) == [(1, "delivered", 200)]

    await wait_for_async(delivered, timeout_s=15, what="one delivered attempt")
    assert [(r.webhook_id, r.verified) for r in receiver.received] == [(str(message.id), True)]
    receiver.secret = "whsec_" + base64.b64encode(b"x" * 32).decode()  # another webhook's secret
    assert not receiver.verify(httpx.Headers({"webhook-id": str(message.id), "webhook-timestamp": str(int(time.time())),
                                              "webhook-signature": "v1,AAAA"}), receiver.received[0].body)  # fmt: skip


async def test_a_failing_receiver_is_retried_through_the_tiers_until_it_answers(
    stack: NativeStack, consuming: Consuming, organizer: ApiUser, hooked: Hooked, receiver: SignedReceiver
) -> None:
    receiver.statuses = [503, 500]
    message = booking_confirmed(str(uuid.uuid4()), event_id=hooked.event_id)
    await publish(stack, message)

    async def third_delivered() -> bool:
        return bool(attempts(stack, organizer, hooked.event_id)[:1] == [(3, "delivered", 200)])

    await wait_for_async(third_delivered, timeout_s=20, what="the third attempt delivered")
    assert attempts(stack, organizer, hooked.event_id) == [
        (3, "delivered", 200),
        (2, "failed", 500),
        (1, "failed", 503),
    ]
    assert [(r.webhook_id, r.verified) for r in receiver.received] == [(str(message.id), True)] * 3


async def test_a_receiver_that_keeps_failing_parks_the_message_after_the_last_tier(
    stack: NativeStack, consuming: Consuming, organizer: ApiUser, hooked: Hooked, receiver: SignedReceiver
) -> None:
    await drain(stack, "webhooks.parking")
    receiver.statuses = [500] * 10
    message = booking_confirmed(str(uuid.uuid4()), event_id=hooked.event_id)
    await publish(stack, message)

    async def parked() -> bool:
        return bool(attempts(stack, organizer, hooked.event_id)[:1] == [(4, "parked", 500)])

    await wait_for_async(parked, timeout_s=20, what="the fourth attempt parked")
    assert [outcome for _, outcome, _ in attempts(stack, organizer, hooked.event_id)] == ["parked"] + ["failed"] * 3
    in_parking = await drain(stack, "webhooks.parking")
    assert [(m.message_id, (m.headers or {})["x-refstack-failures"]) for m in in_parking] == [(str(message.id), 4)]
    assert len(receiver.received) == 4


def test_deliveries_are_the_organizers_alone(stack: NativeStack, organizer: ApiUser, hooked: Hooked) -> None:
    path = f"/api/v1/events/{hooked.event_id}/webhook/deliveries"
    assert call(stack, "GET", path, user=new_user(stack, organizer=True, label="rival"))[0] == 404
    assert call(stack, "GET", path, user=new_user(stack, label="buyer"))[0] == 403
    assert call(stack, "GET", path)[0] == 401
    status, _, page = call(stack, "GET", f"/api/v1/events/{uuid.uuid4()}/webhook/deliveries", user=organizer)
    assert (status, page["status"]) == (404, 404)
