"""An edge's nginx configuration: :class:`EdgeConfig` and the pure renderers.

What the rendered configuration guarantees, and why:

- **Only canonical URIs reach the cache and the parent.** nginx matches
  locations on the *decoded* ``$uri`` (``%0d`` becomes a CR, ``%3F`` a ``?``,
  ``%2e%2e`` a ``..``), so nothing is built from it. A ``map`` validates the raw
  ``$request_uri``: path characters ``[A-Za-z0-9._~/-]`` only (no ``%``-escapes:
  no legitimate path needs one), no ``//``, no segment starting with a dot (so no
  ``.`` or ``..``), at most :data:`MAX_URI_CHARS`, and a query of the same safe
  characters. Anything else is a 400 before any location runs. The token parts,
  the scope path the njs verifier checks, the upstream request line and the cache
  key all come from that one validated capture, and the query is dropped: the
  parent never sees it and it never splits the cache (the box's ``lease_id`` and
  ``region`` only feed the steering tag). ``Accept-Encoding`` is not forwarded and
  the parent's ``Vary`` is ignored, so header values cannot split the cache
  either; the edge gzips playlists itself.
- **Playlists live as long as the origin says.** nginx honours the parent's
  ``Cache-Control`` before ``proxy_cache_valid``: live playlists and catch-up windows
  still growing (start-over, timeshift) come with ``max-age=1``, settled catch-up
  windows with an hour; ``playlist_ttl_seconds`` only covers a parent that says nothing.
- **Slow clients cannot hold the edge.** Header, body and send timeouts are
  short, keep-alive is bounded, timed-out connections are reset (no lingering
  buffers), ``worker_processes`` defaults to ``auto`` and each worker takes
  :data:`DEFAULT_WORKER_CONNECTIONS` connections with the file limit to match.
  A connection still sending its request headers is not yet a request, so no
  per-client limit can count it: the header timeout and the connection headroom
  are the defence against idle half-requests.
- **Per-client limits** (``limit_conn`` on concurrent requests and ``limit_req``
  on signed requests, both answering 429) key on the client address, except for
  ``limit_exempt`` networks and the trusted children of a mid tier. Loopback is
  exempt by default: a real edge never sees a box from loopback, while the local
  stack, the end-to-end tests and the load benchmark run every box from there (a
  local reverse proxy in front of an edge would also make every client one
  address). The defaults are generous because many boxes can share one address
  behind carrier-grade NAT.
- **Content keys never pass an edge.** A ``/keys/...`` path, plain or behind a
  token, is answered 404 by the edge itself (mid tiers included) before any
  location, cache or parent: boxes fetch keys from the front door only, which
  checks the box's rights on every request (an edge cannot, and a cached key would
  be served to anyone holding a signed URL).
- **Traffic counters for the controller only.** Each request the edge logs is counted
  by its cache status (hit or miss) with the bytes its parent sent (``edge_stats.js``,
  one file per worker, summed when read); the sums are at ``/t/<token>/_edge/stats``,
  signed for :data:`STATS_PATH` with the URL-signing keys the controller and the edges
  already share. No box holds such a token (boxes are signed for ``live/`` and
  ``catchup/`` scopes only), so anyone else gets a 403.
- **GET and HEAD only** (405 with ``Allow`` otherwise), request bodies are never
  forwarded, nothing is served from disk, ``server_tokens off``, and nginx's
  built-in error pages, which do not echo the request.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cdn_ctl.domain import Tier, validate_edge_id
from cdn_ctl.errors import InvalidEdge
from cdn_ctl.signing import KeyRing, b64url

NJS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")
PLAYLIST_TYPES = "application/vnd.apple.mpegurl application/x-mpegurl audio/mpegurl"
# The longest request URI (path and query) an edge accepts; signed URLs are ~200.
MAX_URI_CHARS = 1024
DEFAULT_WORKER_CONNECTIONS = 8192
# Per client address: concurrent requests, and signed requests per second with a burst
# (a box makes about one request per second; a channel change a handful at once).
DEFAULT_CLIENT_REQUESTS_MAX = 256
DEFAULT_CLIENT_RATE_PER_SECOND = 100
DEFAULT_CLIENT_BURST = 200
# Loopback only: see the module docstring.
DEFAULT_LIMIT_EXEMPT = ("127.0.0.1/32", "::1/128")

# The scope the controller signs to read an edge's traffic counters (see above).
STATS_PATH = "_edge/stats"

# Characters that could end or extend an nginx directive from a rendered value.
_UNSAFE = "\"'; \t\r\n{}$\\#"
# One path segment: unreserved characters, never starting with a dot.
_SEG = r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*"
_QUERY = r"(?:\?[A-Za-z0-9._~=&-]*)?"
_BOUNDED = rf"^(?=.{{1,{MAX_URI_CHARS}}}$)"
# The token's parts as named captures over the raw URI; tok_rest is the scope path the
# verifier checks and the cache, the parent and the access log use.
_SIGNED_URI = (
    _BOUNDED
    + r"/t/(?<tok_exp>[0-9]{1,12})/(?<tok_kid>[A-Za-z0-9_-]{1,32})"
    + r"/(?<tok_ip>[0-9A-Fa-f.:-]{1,45})/(?<tok_sig>[A-Za-z0-9_-]{43})"
    + rf"/(?<tok_rest>(?:{_SEG}/)*{_SEG}){_QUERY}$"
)
_PLAIN_URI = _BOUNDED + rf"(?<edge_plain>/(?:{_SEG}/)*(?:{_SEG})?){_QUERY}$"
# Location patterns run on the decoded $uri, which equals the raw path once the map
# above has accepted it; they only pick the TTL and the steering filter.
_TOKEN_LOC = r"^/t/[^/]+/[^/]+/[^/]+/[^/]+/"
_STATS_LOC = _TOKEN_LOC + STATS_PATH + "$"
_MASTER_LOC = (
    _TOKEN_LOC + r"(?:live|catchup)/(?<tok_channel>[A-Za-z0-9][A-Za-z0-9._-]*)/master\.m3u8$"
)


def _positive(name: str, value: int, high: int) -> None:
    if not 0 < value <= high:
        raise InvalidEdge(name, f"must be 1-{high}, got {value}")


def _networks(name: str, items: tuple[str, ...]) -> tuple[str, ...]:
    """Each item as a canonical network (an address is a /32 or /128): nothing else
    reaches the rendered configuration."""
    try:
        return tuple(str(ipaddress.ip_network(item, strict=False)) for item in items)
    except ValueError as err:
        raise InvalidEdge(name, f"not an address or network: {err}") from err


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    """What an edge's nginx configuration is rendered from."""

    edge_id: str
    listen_port: int
    upstream: str
    listen_host: str = "127.0.0.1"
    tier: Tier = Tier.EDGE
    cache_max_mb: int = 256
    playlist_ttl_seconds: int = 1
    segment_ttl_seconds: int = 3600
    steering_base_url: str = ""
    trusted_children: tuple[str, ...] = field(default_factory=tuple)
    workers: int | Literal["auto"] = "auto"
    worker_connections: int = DEFAULT_WORKER_CONNECTIONS
    header_timeout_seconds: int = 10
    body_timeout_seconds: int = 10
    send_timeout_seconds: int = 15
    keepalive_timeout_seconds: int = 15
    keepalive_requests: int = 1000
    client_requests_max: int = DEFAULT_CLIENT_REQUESTS_MAX
    client_rate_per_second: int = DEFAULT_CLIENT_RATE_PER_SECOND
    client_burst: int = DEFAULT_CLIENT_BURST
    limit_exempt: tuple[str, ...] = DEFAULT_LIMIT_EXEMPT

    def __post_init__(self) -> None:
        validate_edge_id(self.edge_id)
        if not 0 < self.listen_port < 65536:
            raise InvalidEdge("listen_port", f"must be 1-65535, got {self.listen_port}")
        if ":" not in self.upstream or any(c in self.upstream for c in _UNSAFE):
            raise InvalidEdge("upstream", f"must be host:port, got {self.upstream!r}")
        if not self.listen_host or any(c in self.listen_host for c in _UNSAFE):
            raise InvalidEdge("listen_host", f"must be a host, got {self.listen_host!r}")
        if self.cache_max_mb <= 0 or self.playlist_ttl_seconds <= 0:
            raise InvalidEdge("cache", "cache size and TTLs must be > 0")
        if any(c in self.steering_base_url for c in _UNSAFE):
            raise InvalidEdge("steering_base_url", "must be a plain URL")
        if self.workers != "auto" and (type(self.workers) is not int or not 0 < self.workers):
            raise InvalidEdge("workers", f"must be 'auto' or > 0, got {self.workers!r}")
        _positive("worker_connections", self.worker_connections, 1_000_000)
        for name in (
            "header_timeout_seconds",
            "body_timeout_seconds",
            "send_timeout_seconds",
            "keepalive_timeout_seconds",
        ):
            _positive(name, getattr(self, name), 3600)
        for name in ("keepalive_requests", "client_requests_max"):
            _positive(name, getattr(self, name), 1_000_000)
        _positive("client_rate_per_second", self.client_rate_per_second, 1_000_000)
        _positive("client_burst", self.client_burst, 1_000_000)
        object.__setattr__(
            self, "trusted_children", _networks("trusted_children", self.trusted_children)
        )
        object.__setattr__(self, "limit_exempt", _networks("limit_exempt", self.limit_exempt))


def render_keys_conf(ring: KeyRing) -> str:
    """The ``map`` from key id to secret that the njs verifier reads (mode 0600 on disk)."""
    lines = ["map $tok_kid $tok_secret {", '    default "";']
    lines += [f'    "{key.kid}" "{b64url(key.secret)}";' for key in ring.keys]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _proxy_block(config: EdgeConfig, ttl_seconds: int, extra: str = "") -> str:
    return f"""            if ($tok_status = 410) {{ return 410; }}
            if ($tok_status != 200) {{ return 403; }}
            limit_req zone=edge_rate burst={config.client_burst} nodelay;
            proxy_pass http://parent$edge_path;
            proxy_cache_key $edge_path;
            proxy_cache_valid 200 206 {ttl_seconds}s;
            proxy_cache_valid 404 1s;{extra}
"""


def _unsigned(config: EdgeConfig) -> str:
    if config.tier is not Tier.MID or not config.trusted_children:
        return "        location / {\n            return 403;\n        }\n"
    children = "".join(f"            allow {net};\n" for net in config.trusted_children)
    return f"""        # Children fetch by scope path (their boxes were verified at the child).
        location / {{
{children}            deny all;
            proxy_pass http://parent$edge_path;
            proxy_cache_key $edge_path;
            proxy_cache_valid 200 206 {config.segment_ttl_seconds}s;
            proxy_cache_valid 404 1s;
        }}
"""


def _limits(config: EdgeConfig) -> str:
    exempt = "".join(
        f"        {net} 1;\n"
        for net in dict.fromkeys(config.limit_exempt + config.trusted_children)
    )
    return f"""    # Per-client limits; exempt networks get the empty key, which is never counted.
    geo $edge_exempt {{
        default 0;
{exempt}    }}
    map $edge_exempt $edge_client {{
        1 "";
        default $binary_remote_addr;
    }}
    limit_conn_zone $edge_client zone=edge_conns:10m;
    limit_req_zone $edge_client zone=edge_rate:10m rate={config.client_rate_per_second}r/s;
    limit_conn_status 429;
    limit_req_status 429;
"""


def _canonical() -> str:
    return f"""    # The raw request URI, validated; "" = refused (400). See cdn_ctl/edge_conf.py.
    map $request_uri $edge_path {{
        default "";
        "~{_SIGNED_URI}" /$tok_rest;
        "~{_PLAIN_URI}" $edge_plain;
    }}
    # What the access log shows: never a token, valid or not.
    map $edge_path $edge_log_path {{
        default $edge_path;
        "~^/t/" "/t/-";
    }}
    map $request_method $edge_allow {{
        GET "";
        HEAD "";
        default "GET, HEAD";
    }}
"""


def render_nginx_conf(config: EdgeConfig, prefix: Path, *, epoch: str = "0") -> str:
    """The whole ``nginx.conf`` for one edge rooted at ``prefix``; ``epoch`` names this
    start of nginx in its traffic counters (a new one each start: the counts restart)."""
    if not epoch.isalnum():
        raise InvalidEdge("epoch", f"must be letters and digits, got {epoch!r}")
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    steering = f"""
            sub_filter_types {PLAYLIST_TYPES};
            sub_filter_once off;
            sub_filter '#EXTM3U' $steering_tag;
            sub_filter '#EXT-X-STREAM-INF:' '#EXT-X-STREAM-INF:PATHWAY-ID="{config.edge_id}",';
            sub_filter '#EXT-X-I-FRAME-STREAM-INF:'
                       '#EXT-X-I-FRAME-STREAM-INF:PATHWAY-ID="{config.edge_id}",';"""
    # Two descriptors per proxied connection (client and parent), plus files.
    nofile = 2 * config.worker_connections + 256
    return f"""# Rendered by cdn_ctl.edge for edge {config.edge_id}; do not edit.
load_module {NJS_MODULE};
{user}worker_processes {config.workers};
worker_rlimit_nofile {nofile};
pid {prefix}/nginx.pid;
# crit: nginx's error lines quote the request line, which carries the token.
error_log {prefix}/logs/error.log crit;

events {{
    worker_connections {config.worker_connections};
}}

http {{
    default_type application/octet-stream;
    types {{
        application/vnd.apple.mpegurl m3u8;
        application/dash+xml mpd;
        video/mp2t ts;
        video/iso.segment m4s;
        video/mp4 mp4;
    }}
    sendfile on;
    tcp_nopush on;
    server_tokens off;
    autoindex off;

    # Slow clients: short timeouts, bounded keep-alive and header buffers, and a reset
    # (not a lingering close) for connections that time out.
    client_header_timeout {config.header_timeout_seconds}s;
    client_body_timeout {config.body_timeout_seconds}s;
    send_timeout {config.send_timeout_seconds}s;
    keepalive_timeout {config.keepalive_timeout_seconds}s;
    keepalive_requests {config.keepalive_requests};
    reset_timedout_connection on;
    client_header_buffer_size 1k;
    large_client_header_buffers 4 4k;
    client_max_body_size 1k;

    gzip on;
    gzip_types {PLAYLIST_TYPES};
    gzip_min_length 512;
    gzip_vary on;

    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;

{_canonical()}
{_limits(config)}
    js_import main from {prefix}/edge_verify.js;
    js_set $tok_status main.verify;
    js_set $steering_tag main.steering;
    include {prefix}/keys.conf;
    js_import stats from {prefix}/edge_stats.js;
    js_set $edge_tally stats.tally;
    js_var $edge_stats_dir {prefix}/stats;
    js_var $edge_epoch {epoch};

    # The path after the token only: signatures never reach the log.
    log_format cdn_edge escape=json '{{"ts":"$time_iso8601","edge":"{config.edge_id}",'
        '"client":"$remote_addr","method":"$request_method","path":"$edge_log_path",'
        '"status":$status,"bytes":$body_bytes_sent,"cache":"$upstream_cache_status",'
        '"seconds":$request_time}}';
    # if= is evaluated once per logged request, after the response: it counts the request.
    access_log {prefix}/logs/access.log cdn_edge if=$edge_tally;

    proxy_cache_path {prefix}/cache levels=1:2 keys_zone=edge:16m
                     max_size={config.cache_max_mb}m inactive=30m use_temp_path=off;

    upstream parent {{
        server {config.upstream};
        keepalive 16;
    }}

    server {{
        listen {config.listen_host}:{config.listen_port};
        set $edge_id "{config.edge_id}";
        set $steer_base "{config.steering_base_url}";

        # Before any location: the method, then the raw URI (which also sets $tok_*).
        if ($edge_allow) {{ return 405; }}
        if ($edge_path = "") {{ return 400; }}
        if ($edge_path ~ "^/keys/") {{ return 404; }}
        limit_conn edge_conns {config.client_requests_max};

        proxy_http_version 1.1;
        # The parent gets the validated path and nothing a client could vary: no body,
        # no query, no Accept-Encoding (the edge compresses playlists itself).
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header Connection "";
        proxy_set_header Accept-Encoding "";
        proxy_ignore_headers Vary;
        proxy_hide_header Vary;
        proxy_cache edge;
        # One upstream fetch per object: later requests wait for the first.
        proxy_cache_lock on;
        proxy_cache_lock_timeout 10s;
        proxy_cache_lock_age 10s;
        proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
        proxy_cache_revalidate on;
        proxy_connect_timeout 3s;
        proxy_read_timeout 15s;
        # Each hop reports its own cache status, not its parent's.
        proxy_hide_header X-Cache;
        proxy_hide_header X-Edge;
        add_header X-Cache $upstream_cache_status always;
        add_header X-Edge $edge_id always;
        add_header Access-Control-Allow-Origin * always;
        add_header Allow $edge_allow always;

        location = /healthz {{
            access_log off;
            default_type text/plain;
            return 200 "ok {config.edge_id}\\n";
        }}

        location = /nginx_status {{
            access_log off;
            allow 127.0.0.1;
            deny all;
            stub_status;
        }}

        location ~ "{_STATS_LOC}" {{
            access_log off;
            if ($tok_status = 410) {{ return 410; }}
            if ($tok_status != 200) {{ return 403; }}
            js_content stats.stats;
        }}

        location ~ "{_MASTER_LOC}" {{
{_proxy_block(config, config.playlist_ttl_seconds, steering)}        }}

        location ~ "{_TOKEN_LOC}.+\\.(?:m3u8|mpd)$" {{
{_proxy_block(config, config.playlist_ttl_seconds)}        }}

        location ~ "{_TOKEN_LOC}." {{
{_proxy_block(config, config.segment_ttl_seconds)}        }}

        location ~ ^/t/ {{
            return 403;
        }}

{_unsigned(config)}    }}
}}
"""
