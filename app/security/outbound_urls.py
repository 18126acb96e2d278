"""``OutboundUrlPolicy``: may refstack send a request to this URL? Only to a public http(s) address, or not at all.

Why a policy of its own: any URL a client gives the service (an organizer's webhook) turns the server into the
client's proxy. From inside, the server can reach what the attacker cannot: the loopback admin ports, the private
network, and the cloud metadata service that hands out credentials (169.254.169.254). That is server-side request
forgery (OWASP API7:2023). The rules:

- **http or https only**, no user info (``http://user:pass@host`` both leaks credentials into logs and hides the
  real host from a human reader), a host is required.
- **Every address must be public.** A literal IP is judged as the connecting socket will see it: the legacy
  spellings that ``inet_aton`` and so the C resolver accept (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``)
  and IPv4 addresses hidden in IPv6 (mapped ``::ffff:127.0.0.1``, NAT64, 6to4, Teredo) are unwrapped first. A
  name is resolved, and *every* address it resolves to must be public, since the socket may pick any of them.
- Loopback, private (RFC 1918, ULA), link-local, shared/CGNAT (100.64/10), multicast, unspecified, reserved and
  documentation ranges are refused, and the cloud metadata endpoints are refused by address and by name with a
  reason of their own.

The rules are pure functions of an address; the one IO, DNS, is an injected ``Resolver`` so unit tests can feed
it. ``vet`` answers the addresses it approved so the sender can connect to exactly those (no second lookup for a
DNS-rebinding attacker to answer differently). See notes/security.md, "SSRF".
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[IpAddress]]]

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean …
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task credentials
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
NAT64 = ipaddress.ip_network("64:ff9b::/96")
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
# What inet_aton accepts: one to four parts, each decimal, octal (0…) or hex (0x…). Anything else is a name.
LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$", re.IGNORECASE)


class UrlRefused(ValueError):
    """The URL may not be called; ``reason`` says why in words safe to show the client who gave it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class VettedUrl:
    """A URL that passed, and the public addresses its host resolved to (connect to one of these, nothing else)."""

    url: httpx.URL
    host: str
    port: int
    addresses: tuple[IpAddress, ...]


def literal_address(host: str) -> IpAddress | None:
    """The address a host names without DNS, in any spelling a resolver accepts; None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if LEGACY_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def embedded_ipv4(address: IpAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries to the network (mapped, NAT64, 6to4, Teredo client), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def address_problem(address: IpAddress) -> str | None:
    """What makes an address no public destination (a phrase that follows "is"), or None when it is public."""
    inner = embedded_ipv4(address)
    if inner is not None:
        problem = address_problem(inner)
        return None if problem is None else f"an IPv6 form of {inner} ({problem})"
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_reserved, "reserved"),
        (address in SHARED_ADDRESS_SPACE, "shared address space (carrier-grade NAT)"),
        (address.is_private, "private"),
        (not address.is_global, "not globally routable"),
    )
    return next((kind for refused, kind in checks if refused), None)


def url_shape_problem(url: httpx.URL) -> str | None:
    """Everything about the URL itself that is wrong before any address is looked at."""
    if url.scheme not in ALLOWED_SCHEMES:
        return f"scheme {url.scheme or '(none)'!r} is not allowed; use http or https"
    if url.userinfo:
        return "credentials in the URL are not allowed"
    if not url.host:
        return "the URL has no host"
    if url.host.rstrip(".").lower() in METADATA_HOSTS:
        return f"{url.host} is a cloud metadata host"
    return None


async def system_resolver(host: str, port: int) -> Sequence[IpAddress]:
    """Every address the operating system's resolver (``/etc/hosts``, then DNS) gives for ``host``."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


class OutboundUrlPolicy:
    """``await policy.vet(url)`` → ``VettedUrl`` or ``UrlRefused``; DNS bounded by ``resolve_timeout_s``."""

    def __init__(self, *, resolver: Resolver = system_resolver, resolve_timeout_s: float = 2.0) -> None:
        self._resolve = resolver
        self._resolve_timeout_s = resolve_timeout_s

    async def vet(self, raw_url: str | httpx.URL) -> VettedUrl:
        try:
            url = httpx.URL(raw_url)
        except (httpx.InvalidURL, TypeError) as invalid:
            raise UrlRefused(f"not a valid URL: {invalid}") from None
        if (problem := url_shape_problem(url)) is not None:
            raise UrlRefused(problem)
        port = url.port or DEFAULT_PORTS[url.scheme]
        literal = literal_address(url.host)
        addresses = (literal,) if literal is not None else await self._lookup(url.host, port)
        for address in addresses:
            if (problem := address_problem(address)) is not None:
                where = f"{address} is" if literal is not None else f"{url.host} resolves to {address}, which is"
                raise UrlRefused(f"{where} {problem}")
        return VettedUrl(url=url, host=url.host, port=port, addresses=tuple(addresses))

    async def _lookup(self, host: str, port: int) -> tuple[IpAddress, ...]:
        try:
            async with asyncio.timeout(self._resolve_timeout_s):
                addresses = tuple(await self._resolve(host, port))
        except (OSError, TimeoutError, UnicodeError):
            raise UrlRefused(f"{host} does not resolve") from None
        if not addresses:
            raise UrlRefused(f"{host} does not resolve")
        return addresses
