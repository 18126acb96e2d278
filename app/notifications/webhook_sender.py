"""``WebhookSender``: POSTs a JSON notification to an organizer's URL without becoming an SSRF proxy.

Why not ``httpx.post(url, follow_redirects=True)``: the URL was checked when the organizer registered it, but
what it points at can change afterwards. Three holes, and what closes each:

- **Redirects.** A public host answers ``302 Location: http://169.254.169.254/…`` and a following client walks
  into the metadata service. Redirects are never followed by httpx; each ``Location`` is vetted by the same
  ``OutboundUrlPolicy`` as the first URL, and only ``max_redirects`` hops are taken.
- **DNS rebinding.** The host resolves to a public address when vetted and to ``127.0.0.1`` a second later, when
  the HTTP client resolves it again to connect. The sender never lets it resolve again: it connects to the
  address the policy approved (the URL's host is replaced by that IP) and sends the real name in ``Host`` and, for
  https, as the TLS SNI name, which is also the name the certificate is verified against.
- **Slow or huge answers.** Every hop has connect/read/write timeouts and the whole delivery a deadline; the
  response body is never read (only the status and ``Location`` matter), so a 10 GB answer costs nothing, and
  h11 caps the header block. ``trust_env=False``: an ``HTTP_PROXY`` from the environment would move the connect
  (and the resolution) to the proxy, past the pin.

See notes/security.md, "SSRF".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from app.security.outbound_urls import OutboundUrlPolicy, UrlRefused, VettedUrl
from app.settings import Settings

USER_AGENT = "refstack-webhooks/1"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
KEEPS_METHOD = frozenset({307, 308})  # 301/302/303 turn the POST into a GET without a body, as browsers do
Signer = Callable[[bytes], Mapping[str, str]]


@dataclass(frozen=True)
class Delivery:
    """The receiver's final answer and how many redirects led to it."""

    status: int
    redirects: int


class DeliveryFailed(Exception):
    """Nothing usable came back: a refused hop, too many redirects, a timeout, a connection error."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def open_webhook_sender(settings: Settings) -> WebhookSender:
    """One pooled client per process; it connects to nothing until the first delivery."""
    http = httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        timeout=settings.webhook_timeout_s,
        headers={"User-Agent": USER_AGENT},
    )
    policy = OutboundUrlPolicy(resolve_timeout_s=settings.outbound_resolve_timeout_s)
    return WebhookSender(
        http, policy, max_redirects=settings.webhook_max_redirects, deadline_s=settings.webhook_deadline_s
    )


class WebhookSender:
    """``await sender.deliver(url, payload)`` → ``Delivery``; ``UrlRefused`` or ``DeliveryFailed`` otherwise."""

    def __init__(
        self, http: httpx.AsyncClient, policy: OutboundUrlPolicy, *, max_redirects: int, deadline_s: float
    ) -> None:
        self.policy = policy
        self._http = http
        self._max_redirects = max_redirects
        self._deadline_s = deadline_s

    async def aclose(self) -> None:
        await self._http.aclose()

    async def deliver(self, url: str, payload: Mapping[str, Any], sign: Signer | None = None) -> Delivery:
        """Vet ``url``, then POST ``payload`` hop by hop, all (DNS included) within the delivery deadline; ``sign``
        gives the headers that sign the exact body bytes sent (app/security/webhook_signing.py)."""
        try:
            async with asyncio.timeout(self._deadline_s):
                return await self._deliver_to(await self.policy.vet(url), payload, sign)
        except TimeoutError:
            raise DeliveryFailed(f"no final answer within {self._deadline_s} s") from None

    async def _deliver_to(self, target: VettedUrl, payload: Mapping[str, Any], sign: Signer | None) -> Delivery:
        method = "POST"
        body: bytes | None = json.dumps(payload, separators=(",", ":")).encode()
        signature = dict(sign(body)) if sign is not None and body is not None else {}
        for redirects in range(self._max_redirects + 1):
            request = self._pinned_request(target, method, body)
            if body is not None:
                request.headers.update(signature)
            status, location = await self._send(request)
            if status not in REDIRECTS:
                return Delivery(status=status, redirects=redirects)
            if location is None:
                raise DeliveryFailed(f"a {status} redirect without a Location")
            try:
                target = await self.policy.vet(target.url.join(location))
            except UrlRefused as refused:
                raise DeliveryFailed(f"redirect refused: {refused.reason}") from None
            if status not in KEEPS_METHOD:
                method, body = "GET", None
        raise DeliveryFailed(f"more than {self._max_redirects} redirects")

    def _pinned_request(self, target: VettedUrl, method: str, body: bytes | None) -> httpx.Request:
        """A request to the first vetted address of ``target``, carrying the real host name in ``Host`` and SNI."""
        headers = {"Host": target.url.netloc.decode("ascii")}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return self._http.build_request(
            method,
            target.url.copy_with(host=str(target.addresses[0])),
            headers=headers,
            content=body,
            extensions={"sni_hostname": target.host} if target.url.scheme == "https" else {},
        )

    async def _send(self, request: httpx.Request) -> tuple[int, str | None]:
        """One hop: the status and ``Location``, with the body left unread (closing drops it)."""
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"{type(error).__name__} talking to the receiver") from None
        await response.aclose()
        return response.status_code, response.headers.get("Location")
