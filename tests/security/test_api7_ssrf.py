"""API7:2023 Server-side request forgery: an organizer's webhook URL can never make refstack call inside.

Through Nginx: registering a URL on every refused address class is a 422 ``url-refused`` problem with the reason,
nothing is stored, and a real HTTP server on loopback counts zero requests; a URL that turned private after it was
stored (DNS changed) is refused again when the ping is sent. In-process, the ``WebhookSender`` against
``FakeInternet``: a public receiver that redirects to the metadata service or to loopback is not followed, the
connection goes to the vetted address (no second DNS answer to trust), and the hop count is bounded.
See notes/security.md, "SSRF".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence

import httpx
import pytest

from app.notifications.webhook_sender import DeliveryFailed, WebhookSender
from app.security.outbound_urls import IpAddress, OutboundUrlPolicy, system_resolver
from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, create_event, new_user
from tests.security.loopback_receiver import LoopbackReceiver, loopback_receiver

PUBLIC_IP = "93.184.215.14"  # a globally routable address that FakeInternet answers for
PUBLIC_HOST = "hooks.example.com"
METADATA_HOST = "169.254.169.254"


@pytest.fixture(scope="module")
def receiver() -> Iterator[LoopbackReceiver]:
    with loopback_receiver() as server:
        yield server


@pytest.fixture(scope="module")
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="ssrf-organizer")


@pytest.fixture(scope="module")
def event_id(stack: NativeStack, organizer: ApiUser) -> str:
    return str(create_event(stack, organizer)["id"])


def refused_urls(port: int) -> dict[str, str]:
    """One URL per address class the policy must refuse; the loopback ones point at the real receiver."""
    return {
        "loopback": f"http://127.0.0.1:{port}/hook",
        "loopback-decimal": f"http://2130706433:{port}/hook",
        "loopback-hex": f"http://0x7f.1:{port}/hook",
        "loopback-short": f"http://127.1:{port}/hook",
        "loopback-octal": f"http://0177.0.0.1:{port}/hook",
        "loopback-ipv6": f"http://[::1]:{port}/hook",
        "ipv4-mapped-ipv6": f"http://[::ffff:127.0.0.1]:{port}/hook",
        "nat64-loopback": f"http://[64:ff9b::7f00:1]:{port}/hook",
        "localhost-by-dns": f"http://localhost:{port}/hook",
        "rfc1918-10": "http://10.0.0.8/hook",
        "rfc1918-172": "http://172.16.5.4/hook",
        "rfc1918-192": "http://192.168.1.1/hook",
        "ula": "http://[fd12:3456::1]/hook",
        "link-local": "http://169.254.10.10/hook",
        "link-local-ipv6": "http://[fe80::1]/hook",
        "cgnat": "http://100.64.0.1/hook",
        "multicast": "http://224.0.0.251/hook",
        "unspecified": f"http://0.0.0.0:{port}/hook",
        "reserved": "http://240.0.0.1/hook",
        "metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "metadata-ipv6": "http://[fd00:ec2::254]/latest/meta-data/",
        "metadata-by-name": "http://metadata.google.internal/computeMetadata/v1/",
        "scheme-file": "file:///etc/passwd",
        "scheme-gopher": f"gopher://127.0.0.1:{port}/_hook",
        "userinfo": "http://user:secret@hooks.example.com/hook",
        "no-such-host": "http://no-such-host.invalid/hook",
    }


@pytest.mark.parametrize("kind", list(refused_urls(0)))
def test_registering_a_refused_address_is_422_with_a_reason_and_nothing_is_called(
    stack: NativeStack, organizer: ApiUser, event_id: str, receiver: LoopbackReceiver, kind: str
) -> None:
    url = refused_urls(receiver.port)[kind]
    status, headers, problem = call(
        stack, "PUT", f"/api/v1/events/{event_id}/webhook", user=organizer, body={"url": url}
    )

    assert status == 422, problem
    assert headers["content-type"] == "application/problem+json"
    assert problem["type"].endswith("/url-refused")
    assert problem["errors"][0]["loc"] == ["body", "url"]
    assert problem["errors"][0]["msg"]  # the reason, e.g. "localhost resolves to 127.0.0.1, which is loopback"
    stored, _, answer = call(stack, "GET", f"/api/v1/events/{event_id}/webhook", user=organizer)
    assert stored == 404, answer
    assert receiver.hits == 0


def test_a_public_url_is_stored_and_read_back_by_its_organizer(
    stack: NativeStack, organizer: ApiUser, event_id: str
) -> None:
    url = f"https://{PUBLIC_IP}/hooks/refstack"
    status, _, stored = call(stack, "PUT", f"/api/v1/events/{event_id}/webhook", user=organizer, body={"url": url})
    assert (status, stored["url"]) == (200, url)
    assert call(stack, "GET", f"/api/v1/events/{event_id}/webhook", user=organizer)[2]["url"] == url
    assert call(stack, "DELETE", f"/api/v1/events/{event_id}/webhook", user=organizer)[0] == 204


def test_a_stored_url_that_turned_private_is_refused_again_at_send_time(
    stack: NativeStack, organizer: ApiUser, receiver: LoopbackReceiver
) -> None:
    """What a DNS change after registration looks like from the database: the stored URL now points inside."""
    event = create_event(stack, organizer)
    inside = f"http://localhost:{receiver.port}/hook"
    stack.primary.sql(
        f"INSERT INTO event_webhook (event_id, url) VALUES ('{event['id']}', '{inside}')", database="refstack"
    )
    status, _, problem = call(stack, "POST", f"/api/v1/events/{event['id']}/webhook/ping", user=organizer)
    assert status == 502, problem
    assert problem["type"].endswith("/webhook-delivery-failed")
    assert "loopback" in problem["detail"]
    assert receiver.hits == 0


class FakeInternet(httpx.AsyncBaseTransport):
    """A FAKE of the public internet and of a cloud metadata service, which cannot run here.

    It answers for ``PUBLIC_IP`` (routes by path) and ``METADATA_HOST`` (counts hits, hands out a fake key);
    every other destination goes to the real network, so a request to loopback reaches the real receiver.
    """

    def __init__(self, receiver_port: int) -> None:
        self.receiver_port = receiver_port
        self.public: list[httpx.Request] = []
        self.metadata_hits = 0
        self._real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == METADATA_HOST:
            self.metadata_hits += 1
            return httpx.Response(200, json={"AccessKeyId": "FAKE", "SecretAccessKey": "FAKE"})
        if request.url.host != PUBLIC_IP:
            return await self._real.handle_async_request(request)
        self.public.append(request)
        redirects = {
            "/to-metadata": f"http://{METADATA_HOST}/latest/meta-data/iam/security-credentials/",
            "/to-loopback-by-name": f"http://localhost:{self.receiver_port}/hook",
            "/to-loopback-mapped": f"http://[::ffff:127.0.0.1]:{self.receiver_port}/hook",
            "/loop": "/loop",
            "/moved": f"https://{PUBLIC_HOST}/final",
        }
        if request.url.path in redirects:
            return httpx.Response(307, headers={"Location": redirects[request.url.path]})
        return httpx.Response(204)

    async def aclose(self) -> None:
        await self._real.aclose()


async def fake_dns(host: str, port: int) -> Sequence[IpAddress]:
    """The fake internet's DNS for ``PUBLIC_HOST``; every other name goes to the real resolver (/etc/hosts)."""
    if host == PUBLIC_HOST:
        return [ipaddress.ip_address(PUBLIC_IP)]
    return await system_resolver(host, port)


@pytest.fixture
async def internet(receiver: LoopbackReceiver) -> FakeInternet:
    return FakeInternet(receiver.port)


@pytest.fixture
async def sender(internet: FakeInternet) -> WebhookSender:
    http = httpx.AsyncClient(transport=internet, follow_redirects=False, trust_env=False, timeout=2.0)
    return WebhookSender(http, OutboundUrlPolicy(resolver=fake_dns), max_redirects=3, deadline_s=5.0)


@pytest.mark.parametrize("path", ["/to-metadata", "/to-loopback-by-name", "/to-loopback-mapped"])
async def test_a_redirect_towards_an_inside_address_is_not_followed(
    sender: WebhookSender, internet: FakeInternet, receiver: LoopbackReceiver, path: str
) -> None:
    with pytest.raises(DeliveryFailed, match="redirect refused"):
        await sender.deliver(f"http://{PUBLIC_HOST}{path}", {"type": "ping"})
    assert len(internet.public) == 1
    assert internet.metadata_hits == 0
    assert receiver.hits == 0


async def test_the_connection_goes_to_the_vetted_address_and_redirects_are_bounded(
    sender: WebhookSender, internet: FakeInternet
) -> None:
    delivery = await sender.deliver(f"https://{PUBLIC_HOST}/moved", {"type": "ping"})
    assert (delivery.status, delivery.redirects) == (204, 1)
    first, second = internet.public
    assert (first.url.host, first.headers["Host"]) == (PUBLIC_IP, PUBLIC_HOST)  # pinned: no second DNS answer
    assert first.extensions["sni_hostname"] == PUBLIC_HOST  # TLS still verifies the name, not the IP
    assert (second.method, second.url.path, second.content) == ("POST", "/final", first.content)  # 307 keeps POST

    with pytest.raises(DeliveryFailed, match="more than 3 redirects"):
        await sender.deliver(f"http://{PUBLIC_HOST}/loop", {"type": "ping"})
    assert len(internet.public) == 2 + 4
