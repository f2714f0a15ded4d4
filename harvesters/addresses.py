"""Which hosts and IP addresses a harvester may connect to (the SSRF policy).

Why: a source is any URL someone registered or a peer advertised. Without this policy a
hostile source (or a redirect, or a DNS answer that changes between check and connect)
points the harvester at the loopback interface, the intranet or a cloud metadata service.
``check_url`` resolves a host ONCE with ``resolve()`` and checks every answer;
``Target.connect`` then connects only to an address that passed, keeping the hostname for
the Host header, TLS SNI and certificate verification.

Python's ``ipaddress.is_global`` alone is not enough (3.11 calls 224.0.0.1, ``::7f00:1``,
``2002:7f00:1::`` and ``64:ff9b::7f00:1`` global), so the checks below are explicit and
IPv6 forms that embed an IPv4 address are judged by that IPv4 address.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url
from urllib3.util.ssl_match_hostname import CertificateError

from .errors import FetchError, RefusedURL

__all__ = ["IPAddress", "HostList", "Target", "check_url", "resolve", "parse_ip_literal",
           "address_refusal"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Never a harvest target, even with allow_private or an allow-list entry: "this network"
# (0.0.0.0 reaches the local host on Linux), multicast, 240/4 + broadcast, the unspecified
# IPv6 address, and the cloud instance-metadata endpoints (AWS, ECS, AWS IPv6).
_NEVER = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4", "::/128", "ff00::/8",
    "169.254.169.254/32", "169.254.170.2/32", "fd00:ec2::254/128",
))
# Refused unless private addresses are allowed: RFC 6890 special-purpose blocks that
# is_global misses on some Python versions, IPv4-compatible IPv6 (::/96, deprecated),
# RFC 8215 local-use NAT64 and site-local fec0::/10 (deprecated, still routed in places).
_SPECIAL = tuple(ipaddress.ip_network(n) for n in (
    "100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "::/96", "64:ff9b:1::/48",
    "fec0::/10", "2001::/23",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")        # RFC 6052: last 32 bits are IPv4
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 IPv4-translated
# WHATWG URL: a host whose last label is a number is an IPv4 address ("127.1",
# "2130706433", "0x7f.0.0.1", "017700000001"); only the canonical dotted quad is accepted.
_NUMERIC_LABEL = re.compile(r"(?:[0-9]+|0[xX][0-9a-fA-F]*)")


def resolve(host: str, port: int) -> list[str]:
    """All addresses the system resolver gives for ``host``, in its order, without duplicates.

    The one place the harvester asks DNS; tests replace it to simulate rebinding. Bounded by
    the system resolver's own timeout (resolv.conf), as getaddrinfo takes none.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    found: list[str] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in found:
            found.append(str(sockaddr[0]))
    return found


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address if ``host`` (as in a URL, IPv6 in brackets) is an IP literal, else None.

    Raises ValueError for numeric forms that are not canonical (``127.1``, ``0x7f.0.0.1``,
    ``2130706433``) and for IPv6 zone ids: resolvers read those differently, so they are
    refused instead of guessed at.
    """
    if host.startswith("[") and host.endswith("]"):
        inner = host[1:-1]
        if "%" in inner:
            raise ValueError(f"IPv6 zone id in host {host!r}")
        return ipaddress.IPv6Address(inner)
    last = host.rstrip(".").rsplit(".", 1)[-1]
    if not _NUMERIC_LABEL.fullmatch(last):
        return None
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"non-canonical numeric host {host!r}") from None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _TRANSLATED:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_refusal(ip: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why ``ip`` must not be connected to (a short category), or None if it may be."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = address_refusal(embedded, allow_private=allow_private)
            return f"{inner} (embedded in {ip})" if inner else None
    if any(ip in net for net in _NEVER):
        return "unspecified" if ip.is_unspecified else (
            "multicast" if ip.is_multicast else "reserved")
    if allow_private:
        return None
    for category in ("loopback", "link_local", "private", "reserved", "site_local"):
        if getattr(ip, f"is_{category}", False):
            return category.replace("_", "-")
    if any(ip in net for net in _SPECIAL):
        return "special-purpose"
    if not ip.is_global:
        return "not-global"
    return None


class HostList:
    """Host patterns from configuration: ``example.org`` (that name), ``.example.org`` (its
    subdomains and itself), or an IP address / CIDR network (``10.20.0.0/16``)."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.names: set[str] = set()
        self.suffixes: list[str] = []
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for raw in patterns:
            pattern = raw.strip().lower().rstrip(".")
            if not pattern:
                continue
            try:
                self.networks.append(ipaddress.ip_network(pattern.strip("[]"), strict=False))
            except ValueError:
                if pattern.startswith("."):
                    self.suffixes.append(pattern)
                else:
                    self.names.add(pattern)

    def __bool__(self) -> bool:
        return bool(self.names or self.suffixes or self.networks)

    def matches_name(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.names or any(
            host.endswith(s) or host == s[1:] for s in self.suffixes)

    def covers(self, addresses: Sequence[IPAddress]) -> bool:
        """True if every address lies in one of the listed networks."""
        return bool(addresses) and all(
            any(ip.version == net.version and ip in net for net in self.networks)
            for ip in addresses)


@dataclass(frozen=True)
class Target:
    """A URL that passed the policy, with the checked addresses to connect to."""

    url: str
    scheme: str
    host: str                    # as in the URL: IDNA, lower case, IPv6 in brackets
    port: int
    addresses: tuple[str, ...]   # all checked, in resolver order
    request_uri: str

    @property
    def host_header(self) -> str:
        host = self.host.rstrip(".")
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def connect(self, timeout: Callable[[], float], ca_certs: str) -> HTTPConnection:
        """A connection to the first checked address that answers (``timeout()`` gives each
        try its connect timeout). TLS SNI and certificate verification use the hostname, not
        the address; an IP-literal URL is verified against its IP, as urllib3 does."""
        literal = self.host.startswith("[") or self.host == self.addresses[0]
        failure: Exception | None = None
        for address in self.addresses:
            if self.scheme == "http":
                conn = HTTPConnection(address, self.port, timeout=timeout())
            else:
                conn = HTTPSConnection(
                    address, self.port, timeout=timeout(), cert_reqs="CERT_REQUIRED",
                    server_hostname=None if literal else self.host.rstrip("."),
                    ca_certs=ca_certs)
            try:
                conn.connect()
                return conn
            except (ssl.SSLError, urllib3.exceptions.SSLError, CertificateError):
                conn.close()
                raise
            except (OSError, urllib3.exceptions.HTTPError) as exc:
                conn.close()
                failure = exc  # unreachable: try the next checked address
        assert failure is not None
        raise failure


def check_url(url: str, *, allow_private: bool = False, allow: HostList | None = None,
              deny: HostList | None = None) -> Target:
    """Parse ``url``, resolve its host once and check every address it resolves to.

    Raises RefusedURL (reason refused-url / refused-scheme / refused-host / refused-address),
    or FetchError with reason "dns-failed". Everything the request uses later (address, Host
    header, path) comes from this one parse, so no second parser can read the URL otherwise.
    """
    allow, deny = allow or HostList(), deny or HostList()
    if any(c <= " " or c == "\x7f" for c in url):
        raise RefusedURL(f"whitespace or control character in {url!r}", reason="refused-url")
    try:
        parts = parse_url(url)
    except LocationParseError as exc:
        raise RefusedURL(f"unparsable URL {url!r}", reason="refused-url") from exc
    if parts.scheme not in ("http", "https"):
        raise RefusedURL(f"scheme of {url!r} is not http or https", reason="refused-scheme")
    if not parts.host or parts.auth or parts.port == 0:
        raise RefusedURL(f"no host, credentials or port 0 in {url!r}", reason="refused-url")
    host, port = parts.host, parts.port or (443 if parts.scheme == "https" else 80)
    if deny.matches_name(host):
        raise RefusedURL(f"host {host} is denied", reason="refused-host")
    try:
        literal = parse_ip_literal(host)
    except ValueError as exc:
        raise RefusedURL(f"{exc} in {url!r}", reason="refused-address") from exc
    if literal is not None:
        found = [str(literal)]
    else:
        try:
            found = resolve(host, port)  # the only DNS lookup for this hop
        except OSError as exc:
            raise FetchError(f"cannot resolve {host}: {exc}", reason="dns-failed") from exc
        if not found:
            raise FetchError(f"no address for {host}", reason="dns-failed")
    ips = [ipaddress.ip_address(a) for a in found]
    if deny.covers(ips):
        raise RefusedURL(f"host {host} is in a denied network", reason="refused-host")
    trusted = allow_private or allow.matches_name(host) or allow.covers(ips)
    for ip in ips:  # every answer counts: one bad address refuses the host (DNS rebinding)
        why = address_refusal(ip, allow_private=trusted)
        if why:
            raise RefusedURL(f"{host}: address {ip} is {why}", reason="refused-address")
    return Target(url, parts.scheme, host, port, tuple(found), parts.request_uri)
