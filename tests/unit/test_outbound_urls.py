"""The outbound URL policy's rules, without a network: literal spellings, embedded IPv4, every resolved address.

The resolver here is a table (a fake of DNS, which the rule under test only consumes); the real resolver is
exercised through Nginx in tests/security/test_api7_ssrf.py (``localhost`` via /etc/hosts).
See notes/security.md, "SSRF".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from app.security.outbound_urls import IpAddress, OutboundUrlPolicy, UrlRefused, address_problem, literal_address

DNS = {
    "public.example": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "split.example": ["93.184.215.14", "10.0.0.7"],  # one private answer is enough to refuse
    "rebind.example": ["127.0.0.1"],
}


async def table_dns(host: str, port: int) -> Sequence[IpAddress]:
    if host not in DNS:
        raise OSError("NXDOMAIN")
    return [ipaddress.ip_address(address) for address in DNS[host]]


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("hooks.example.com", None),
        ("1e3", None),
    ],
)
def test_literal_addresses_are_read_in_every_spelling_a_resolver_accepts(spelling: str, address: str | None) -> None:
    assert literal_address(spelling) == (None if address is None else ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("100.64.0.1", "shared address space (carrier-grade NAT)"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("169.254.1.1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("::ffff:10.0.0.1", "an IPv6 form of 10.0.0.1 (private)"),
        ("64:ff9b::a9fe:a9fe", "an IPv6 form of 169.254.169.254 (a cloud metadata address)"),
        ("2002:7f00:1::", "an IPv6 form of 127.0.0.1 (loopback)"),
        ("93.184.215.14", None),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", None),
    ],
)
def test_each_address_class_has_its_reason(address: str, problem: str | None) -> None:
    assert address_problem(ipaddress.ip_address(address)) == problem


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://split.example/hook", "split.example resolves to 10.0.0.7, which is private"),
        ("http://rebind.example/hook", "rebind.example resolves to 127.0.0.1, which is loopback"),
        ("http://missing.example/hook", "missing.example does not resolve"),
        ("ftp://public.example/hook", "scheme 'ftp' is not allowed; use http or https"),
        ("http://me:pw@public.example/hook", "credentials in the URL are not allowed"),
        ("http://metadata.google.internal./x", "metadata.google.internal. is a cloud metadata host"),
    ],
)
async def test_a_name_passes_only_if_every_address_it_resolves_to_is_public(url: str, reason: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        await OutboundUrlPolicy(resolver=table_dns).vet(url)
    assert refused.value.reason == reason


async def test_a_public_name_is_vetted_with_the_addresses_to_connect_to() -> None:
    vetted = await OutboundUrlPolicy(resolver=table_dns).vet("https://public.example/hook")
    assert (vetted.host, vetted.port) == ("public.example", 443)
    assert [str(address) for address in vetted.addresses] == DNS["public.example"]
