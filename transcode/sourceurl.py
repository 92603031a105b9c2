"""The grammar of a source URL: what a VOD job or a live channel may name, before any
allow-list (``transcode.sources``) looks at where it points.

A source is an absolute path, ``file:///path`` or a plain ``scheme://`` URL of a
supported scheme. FFmpeg nests protocols (``crypto+http:``, ``subfile,,...:``) and reads
URL query options as protocol options, so anything but a plain scheme, and any query
option a scheme does not list, is refused here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from transcode.errors import InvalidRequest

LIVE_SCHEMES = ("udp", "rtp", "srt", "http", "https", "file")
VOD_SCHEMES = ("file", "http", "https")
MAX_SOURCE_CHARS = 2048


def validate_source(value: str) -> str:
    """Check a VOD source's form: an absolute path, ``file:///path`` or an http(s) URL."""
    source = parse_source("source", value, VOD_SCHEMES)
    return source.path if source.scheme == "file" else value


def validate_live_source(value: str, *, field_name: str = "channel.source") -> str:
    """Check a live source's form: udp/rtp/srt ``host:port``, http(s), or a file to loop."""
    parse_source(field_name, value, LIVE_SCHEMES)
    return value


@dataclass(frozen=True, slots=True)
class SourceUrl:
    """A source split into the parts the allow-lists check (``path`` decoded for files)."""

    scheme: str
    host: str = ""
    port: int | None = None
    path: str = ""
    query: tuple[tuple[str, str], ...] = ()
    raw_query: str = ""
    has_userinfo: bool = False


_SCHEME = re.compile(r"[a-z][a-z0-9]{0,15}", re.ASCII)
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Per scheme, the URL query options a source may carry (FFmpeg reads them as protocol options).
_QUERY_OPTIONS = {
    "udp": frozenset(
        ("localaddr", "pkt_size", "buffer_size", "fifo_size", "overrun_nonfatal", "timeout",
         "sources", "block", "reuse", "reuse_socket")
    ),
    "rtp": frozenset(("localaddr", "pkt_size", "buffer_size", "fifo_size", "timeout", "sources",
                      "block")),
    "srt": frozenset(("mode", "latency", "rcvlatency", "peerlatency", "passphrase", "pbkeylen",
                      "streamid", "timeout", "rcvbuf")),
}  # fmt: skip
_NETWORK_NEEDS_PORT = ("udp", "rtp", "srt")


def parse_source(field_name: str, value: str, supported: tuple[str, ...]) -> SourceUrl:
    """Split a source into its parts, refusing FFmpeg protocol tricks and malformed URLs."""
    if not value:
        raise InvalidRequest(field_name, "is required")
    if len(value) > MAX_SOURCE_CHARS:
        raise InvalidRequest(field_name, f"longer than {MAX_SOURCE_CHARS} characters")
    if _CONTROL.search(value):
        raise InvalidRequest(field_name, "has control characters")
    if value.startswith("/"):
        return _file_source(field_name, value, supported)
    if not value.isascii() or " " in value:
        raise InvalidRequest(field_name, "URLs must be ASCII without spaces (percent-encode)")
    scheme = value.partition(":")[0]
    if not _SCHEME.fullmatch(scheme) or ":" not in value:
        # "crypto+http:", "subfile,,...:" and the like nest FFmpeg protocols.
        raise InvalidRequest(field_name, "must be an absolute path or a plain scheme:// URL")
    if scheme not in supported:
        raise InvalidRequest(
            field_name, f"scheme {scheme!r} is not a source here (one of {', '.join(supported)})"
        )
    if scheme == "file":
        if not value.startswith("file:///"):
            raise InvalidRequest(field_name, "file sources are file:///absolute/path")
        parts = urlsplit(value)
        if parts.query or parts.fragment:
            raise InvalidRequest(field_name, "file sources take no query or fragment")
        try:
            path = unquote(parts.path, errors="strict")
        except UnicodeDecodeError as err:
            raise InvalidRequest(field_name, "file path is not UTF-8") from err
        if _CONTROL.search(path):
            raise InvalidRequest(field_name, "file path has control characters")
        return _file_source(field_name, path, supported)
    return _network_source(field_name, value, scheme)


def _file_source(field_name: str, path: str, supported: tuple[str, ...]) -> SourceUrl:
    if "file" not in supported:
        raise InvalidRequest(field_name, "file sources are not accepted here")
    if ".." in path.split("/"):
        raise InvalidRequest(field_name, "file paths may not contain '..'")
    return SourceUrl("file", path=path)


def _network_source(field_name: str, value: str, scheme: str) -> SourceUrl:
    parts = urlsplit(value)
    if not value.startswith(f"{scheme}://"):
        raise InvalidRequest(field_name, f"{scheme} sources are {scheme}://host...")
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError as err:
        raise InvalidRequest(field_name, "port is not a number between 0 and 65535") from err
    if not host or "%" in host:
        raise InvalidRequest(field_name, f"{scheme} sources need a host")
    if ":" not in host and not _HOST_NAME.fullmatch(host):
        raise InvalidRequest(field_name, f"not a host name: {host[:64]!r}")
    userinfo = "@" in parts.netloc
    if scheme in _NETWORK_NEEDS_PORT:
        if not port:
            raise InvalidRequest(field_name, f"{scheme} sources need {scheme}://host:port")
        if userinfo or parts.path not in ("", "/") or parts.fragment:
            raise InvalidRequest(field_name, f"{scheme} sources are {scheme}://host:port?options")
    query = tuple(parse_qsl(parts.query, keep_blank_values=True))
    allowed = _QUERY_OPTIONS.get(scheme)
    if allowed is not None:
        for key, _value in query:
            if key not in allowed:
                raise InvalidRequest(field_name, f"{scheme} option {key!r} is not accepted")
    return SourceUrl(scheme, host, port, parts.path, query, parts.query, userinfo)
