"""Where a job or channel may read from and publish to: the allow-lists, with their I/O.

``sourceurl.parse_source`` refuses malformed sources and FFmpeg protocol tricks
(nested protocols, ``concat:``, ``subfile``, ``data:``, ``pipe:``, ``..``).
:class:`SourceGuard` then applies the operator's allow-lists
(``SourceSettings``): the scheme must be allowed for the kind of source, a
network host must resolve only to addresses inside ``TC_SOURCE_NETWORKS``,
and a file must resolve (symlinks followed) to a path under one of
``TC_MEDIA_ROOTS``. Loopback, link-local, unspecified and cloud metadata
addresses pass only when a listed network lies inside their range (a broad
``0.0.0.0/0`` never lets them in); the one exception is a UDP source on a
loopback address, on which FFmpeg only listens (it sends nothing to it).

The guard runs when a job or channel is submitted and again right before
FFmpeg starts; what it returns (:class:`SourceInput`) is exactly what FFmpeg
is given, with a protocol whitelist so no nested protocol can be opened and,
for http(s), no redirects. :func:`publish_dir` keeps outputs under the origin
root.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode, urlunsplit

from headend.settings import Network
from transcode.domain import validate_channel_id, validate_id
from transcode.errors import InvalidRequest, SourceRefused
from transcode.settings import SourceSettings
from transcode.sourceurl import LIVE_SCHEMES, VOD_SCHEMES, SourceUrl, parse_source

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Addresses a broad allow-list entry never covers: a network inside one of these
# ranges has to be listed for its addresses to pass.
SPECIAL_NETWORKS: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network", 0.0.0.0 reaches local services
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, including the 169.254.169.254 metadata service
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "168.63.129.16/32",  # Azure host services
        "255.255.255.255/32",
        "::/128",
        "::1/128",
        "fe80::/10",
        "fd00:ec2::254/128",  # AWS metadata over IPv6
    )
)
# The FFmpeg protocols each scheme needs, and nothing else (no nested protocols).
_WHITELIST = {
    "file": "file",
    "udp": "udp",
    "rtp": "rtp,udp",
    "srt": "srt",
    "http": "http,https,tcp,tls",
    "https": "http,https,tcp,tls",
}
_MAX_ADDRESSES = 32


@dataclass(frozen=True, slots=True)
class SourceInput:
    """What FFmpeg is given for a checked source: the URL or path, and input options."""

    scheme: str
    url: str
    options: Mapping[str, str] = field(default_factory=dict)


class Resolver(Protocol):
    """Looks up a host name's addresses (``SystemResolver``)."""

    async def addresses(self, host: str) -> list[str]: ...


class SystemResolver:
    """The system resolver, through the event loop's ``getaddrinfo``."""

    async def addresses(self, host: str) -> list[str]:
        """Every address ``host`` resolves to; an empty list when it does not resolve."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            return []
        return [str(info[4][0]) for info in infos]


def _address(text: str) -> Address | None:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def address_allowed(addr: Address, networks: tuple[Network, ...]) -> bool:
    """True when ``addr`` is inside a listed network, and special addresses are named."""
    special = [s for s in SPECIAL_NETWORKS if s.version == addr.version and addr in s]
    for net in networks:
        if net.version != addr.version or addr not in net:
            continue
        if all(net.subnet_of(s) for s in special):  # type: ignore[arg-type]
            return True
    return False


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path.is_relative_to(root.resolve()) for root in roots)


class SourceGuard:
    """Applies ``SourceSettings`` to live and VOD sources; raises ``SourceRefused``."""

    def __init__(self, settings: SourceSettings, *, resolver: Resolver | None = None) -> None:
        self._settings = settings
        self._resolver = resolver or SystemResolver()

    async def vod(self, source: str, *, field_name: str = "source") -> SourceInput:
        """Check a VOD job's source; returns what FFmpeg reads."""
        parsed = self._parse(field_name, source, VOD_SCHEMES, self._settings.vod_schemes)
        return await self._check(field_name, parsed)

    async def live(self, source: str, *, field_name: str = "channel.source") -> SourceInput:
        """Check a live channel's source; returns what FFmpeg reads (before live timeouts)."""
        parsed = self._parse(field_name, source, LIVE_SCHEMES, self._settings.live_schemes)
        return await self._check(field_name, parsed)

    @staticmethod
    def _parse(
        field_name: str, source: str, supported: tuple[str, ...], allowed: tuple[str, ...]
    ) -> SourceUrl:
        try:
            parsed = parse_source(field_name, source, supported)
        except InvalidRequest as err:
            raise SourceRefused(field_name, err.reason) from err
        if parsed.scheme not in allowed:
            raise SourceRefused(
                field_name,
                f"{parsed.scheme} sources are not allowed here (allowed: {', '.join(allowed)})",
            )
        return parsed

    async def _check(self, field_name: str, parsed: SourceUrl) -> SourceInput:
        whitelist = {"protocol_whitelist": _WHITELIST[parsed.scheme]}
        if parsed.scheme == "file":
            path = await asyncio.to_thread(self._media_path, field_name, parsed.path)
            return SourceInput("file", str(path), whitelist)
        if parsed.has_userinfo:
            raise SourceRefused(field_name, "credentials in source URLs are not accepted")
        await self._check_host(field_name, parsed)
        netloc = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
        if parsed.port is not None:
            netloc = f"{netloc}:{parsed.port}"
        # FFmpeg gets a URL rebuilt from the host just checked, so no difference between
        # its URL parser and Python's can make it connect somewhere else.
        if parsed.scheme in ("http", "https"):
            # A redirect could lead anywhere, past the host check above.
            whitelist["max_redirects"] = "0"
            url = urlunsplit((parsed.scheme, netloc, parsed.path or "/", parsed.raw_query, ""))
        else:
            url = urlunsplit((parsed.scheme, netloc, "", urlencode(parsed.query), ""))
        return SourceInput(parsed.scheme, url, whitelist)

    def _media_path(self, field_name: str, raw: str) -> Path:
        roots = self._settings.media_roots
        if not roots:
            raise SourceRefused(field_name, "file sources are off here (TC_MEDIA_ROOTS is empty)")
        path = Path(raw).resolve()
        if not _inside(path, roots):
            raise SourceRefused(
                field_name, "file sources must be under TC_MEDIA_ROOTS (symlinks resolved)"
            )
        return path

    async def _check_host(self, field_name: str, parsed: SourceUrl) -> None:
        literal = _address(parsed.host)
        if literal is not None:
            addresses: list[Address] = [literal]
        else:
            found = await self._resolver.addresses(parsed.host)
            if not found:
                raise SourceRefused(field_name, f"host {parsed.host!r} does not resolve")
            if len(found) > _MAX_ADDRESSES:
                raise SourceRefused(field_name, f"host {parsed.host!r} has too many addresses")
            # FFmpeg may connect to any of them, so every one must pass.
            resolved = [_address(a) for a in found]
            addresses = [a for a in resolved if a is not None]
            if len(addresses) != len(found):
                raise SourceRefused(field_name, f"host {parsed.host!r} has unreadable addresses")
        for addr in addresses:
            if parsed.scheme == "udp" and addr.is_loopback:
                continue  # FFmpeg listens on a loopback UDP source; it sends nothing to it
            if not address_allowed(addr, self._settings.networks):
                shown = "" if literal is not None else f" ({parsed.host} resolves to it)"
                if any(addr.version == s.version and addr in s for s in SPECIAL_NETWORKS):
                    why = "is loopback, link-local or a metadata service: only a network "
                    why += "inside its range listed in TC_SOURCE_NETWORKS admits it"
                else:
                    why = "is outside TC_SOURCE_NETWORKS"
                raise SourceRefused(field_name, f"address {addr}{shown} {why}")


def publish_dir(origin_root: Path, kind: str, name: str) -> Path:
    """``<origin_root>/<kind>/<name>``, refused unless it stays under the root (symlinks too)."""
    field_name = "channel.id" if kind == "live" else "asset"
    try:
        if kind == "live":
            validate_channel_id(field_name, name)
        else:
            validate_id(field_name, name)
    except InvalidRequest as err:
        raise SourceRefused(field_name, err.reason) from err
    root = origin_root.resolve()
    parent = (root / kind).resolve()
    target = parent / name
    if parent != root / kind or target.is_symlink():
        raise SourceRefused("output", f"{kind}/{name} would be written outside ORIGIN_ROOT")
    return target
