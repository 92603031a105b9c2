"""Local nginx edges: render an edge's configuration and run nginx as a child process.

Each edge is a ``proxy_cache`` with a cache lock (one upstream fetch per
object per village), a cache key without the token, the origin's
Cache-Control honoured (fallback TTLs short for playlists and long for
segments), an upstream to its parent tier or the origin, ``/healthz`` for
probes, and signed-URL verification in njs (``edge_verify.js``) with the keys
in an included ``keys.conf``, so edges never call back to the controller.
The access log records the scope path only, never the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import getpass
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import aiohttp

from cdn_ctl.domain import Tier, validate_edge_id
from cdn_ctl.errors import EdgeStartError, InvalidEdge
from cdn_ctl.signing import KeyRing, SigningKey, b64url

NJS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")
PLAYLIST_TYPES = "application/vnd.apple.mpegurl application/x-mpegurl audio/mpegurl"
# The token's parts as named captures; tok_rest is the scope path the cache,
# the upstream and the access log use.
_TOKEN = (
    r"^/t/(?<tok_exp>[0-9]{1,12})/(?<tok_kid>[A-Za-z0-9_-]{1,32})/(?<tok_ip>[0-9A-Fa-f.:-]{1,45})"
    r"/(?<tok_sig>[A-Za-z0-9_-]{43})/"
)
_MASTER = r"(?<tok_rest>(?:live|catchup)/(?<tok_channel>[A-Za-z0-9][A-Za-z0-9._-]*)/master\.m3u8)$"


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
    workers: int = 1

    def __post_init__(self) -> None:
        validate_edge_id(self.edge_id)
        if not 0 < self.listen_port < 65536:
            raise InvalidEdge("listen_port", f"must be 1-65535, got {self.listen_port}")
        if ":" not in self.upstream:
            raise InvalidEdge("upstream", f"must be host:port, got {self.upstream!r}")
        if self.cache_max_mb <= 0 or self.playlist_ttl_seconds <= 0:
            raise InvalidEdge("cache", "cache size and TTLs must be > 0")
        if any(c in self.steering_base_url for c in "\"'; \n{}$"):
            raise InvalidEdge("steering_base_url", "must be a plain URL")


def render_keys_conf(ring: KeyRing) -> str:
    """The ``map`` from key id to secret that the njs verifier reads (mode 0600 on disk)."""
    lines = ["map $tok_kid $tok_secret {", '    default "";']
    lines += [f'    "{key.kid}" "{b64}";' for key, b64 in _encoded(ring)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _encoded(ring: KeyRing) -> list[tuple[SigningKey, str]]:
    return [(key, b64url(key.secret)) for key in ring.keys]


def _proxy_block(ttl_seconds: int, extra: str = "") -> str:
    return f"""        if ($tok_status = 410) {{ return 410; }}
        if ($tok_status != 200) {{ return 403; }}
        proxy_pass http://parent/$tok_rest;
        proxy_cache_key /$tok_rest;
        proxy_cache_valid 200 206 {ttl_seconds}s;
        proxy_cache_valid 404 1s;{extra}
"""


def render_nginx_conf(config: EdgeConfig, prefix: Path) -> str:
    """The whole ``nginx.conf`` for one edge rooted at ``prefix``."""
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    steering = f"""
        proxy_set_header Accept-Encoding "";
        sub_filter_types {PLAYLIST_TYPES};
        sub_filter_once off;
        sub_filter '#EXTM3U' $steering_tag;
        sub_filter '#EXT-X-STREAM-INF:' '#EXT-X-STREAM-INF:PATHWAY-ID="{config.edge_id}",';
        sub_filter '#EXT-X-I-FRAME-STREAM-INF:'
                   '#EXT-X-I-FRAME-STREAM-INF:PATHWAY-ID="{config.edge_id}",';"""
    children = "".join(f"        allow {addr};\n" for addr in config.trusted_children)
    unsigned = (
        f"""    # Children fetch by scope path (their boxes were verified at the child).
    location / {{
{children}        deny all;
        proxy_pass http://parent;
        proxy_cache_key $uri;
        proxy_cache_valid 200 206 {config.segment_ttl_seconds}s;
        proxy_cache_valid 404 1s;
    }}
"""
        if config.tier is Tier.MID and config.trusted_children
        else "    location / {\n        return 403;\n    }\n"
    )
    return f"""# Rendered by cdn_ctl.edge for edge {config.edge_id}; do not edit.
load_module {NJS_MODULE};
{user}worker_processes {config.workers};
pid {prefix}/nginx.pid;
# crit: nginx's error lines quote the request line, which carries the token.
error_log {prefix}/logs/error.log crit;

events {{
    worker_connections 1024;
}}

http {{
    default_type application/octet-stream;
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
        video/iso.segment m4s;
        video/mp4 mp4;
    }}
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30s;
    server_tokens off;

    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;

    js_import main from {prefix}/edge_verify.js;
    js_set $tok_status main.verify;
    js_set $steering_tag main.steering;
    include {prefix}/keys.conf;

    # The path after the token only: signatures never reach the log.
    log_format cdn_edge escape=json '{{"ts":"$time_iso8601","edge":"{config.edge_id}",'
        '"client":"$remote_addr","method":"$request_method","path":"/$tok_rest",'
        '"status":$status,"bytes":$body_bytes_sent,"cache":"$upstream_cache_status",'
        '"seconds":$request_time}}';
    access_log {prefix}/logs/access.log cdn_edge;

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

        proxy_http_version 1.1;
        proxy_set_header Connection "";
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

        location ~ "{_TOKEN}{_MASTER}" {{
{_proxy_block(config.playlist_ttl_seconds, steering)}        }}

        location ~ "{_TOKEN}(?<tok_rest>.+\\.m3u8)$" {{
{_proxy_block(config.playlist_ttl_seconds)}        }}

        location ~ "{_TOKEN}(?<tok_rest>.+)$" {{
{_proxy_block(config.segment_ttl_seconds)}        }}

        location ~ ^/t/ {{
            return 403;
        }}

{unsigned}    }}
}}
"""


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG = 1: the kernel sends nginx SIGTERM if its parent dies, so even a
    # kill -9 of `headend up` leaves no orphan edge holding the port.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class EdgeProcess:
    """One nginx edge as a child process under ``prefix`` (config, cache, logs, pid)."""

    def __init__(
        self, config: EdgeConfig, *, prefix: Path, keys: KeyRing, nginx: str = "nginx"
    ) -> None:
        self.config = config
        self.prefix = prefix.resolve()
        self.keys = keys
        self._nginx = nginx
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` of the edge."""
        return f"http://{self.config.listen_host}:{self.config.listen_port}"

    @property
    def pid(self) -> int | None:
        """The nginx master's pid while running."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        """True while the master process is alive."""
        return self.pid is not None

    @property
    def access_log(self) -> Path:
        """The JSON-lines access log (scope paths only)."""
        return self.prefix / "logs" / "access.log"

    def write_config(self) -> Path:
        """Render nginx.conf, keys.conf and the njs verifier into the prefix."""
        for sub in ("logs", "cache", "tmp"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        script = resources.files("cdn_ctl").joinpath("edge_verify.js").read_text()
        (self.prefix / "edge_verify.js").write_text(script)
        self._write_keys()
        conf = self.prefix / "nginx.conf"
        conf.write_text(render_nginx_conf(self.config, self.prefix))
        return conf

    def _write_keys(self) -> None:
        keys = self.prefix / "keys.conf"
        keys.touch(mode=0o600)
        keys.chmod(0o600)
        keys.write_text(render_keys_conf(self.keys))

    async def start(self, timeout_seconds: float = 10.0) -> None:
        """Start nginx and wait until ``/healthz`` answers."""
        binary = shutil.which(self._nginx)
        if binary is None:
            raise EdgeStartError("nginx not found: install it (apt-get install nginx)")
        if self.running:
            return
        conf = self.write_config()
        out = (self.prefix / "logs" / "stderr.log").open("ab")
        try:
            # A plain Popen (not asyncio's) so kill() also works from sync teardown.
            self._proc = subprocess.Popen(  # noqa: ASYNC220
                [binary, "-p", str(self.prefix), "-c", str(conf), "-g", "daemon off;"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,  # its own group: kill() reaches the workers too
                preexec_fn=_die_with_parent,
            )
        finally:
            out.close()
        deadline = time.monotonic() + timeout_seconds
        async with aiohttp.ClientSession() as http:
            while True:
                if self._proc.poll() is not None:
                    raise EdgeStartError(
                        f"nginx for edge {self.config.edge_id} exited: {self._log_tail()}",
                        details={"edge_id": self.config.edge_id},
                    )
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(
                        f"{self.url}/healthz", timeout=aiohttp.ClientTimeout(total=1)
                    ) as resp:
                        # The body names the edge: another process on the port is not us.
                        body = await resp.text()
                        if resp.status == 200 and body.strip() == f"ok {self.config.edge_id}":
                            return
                if time.monotonic() > deadline:
                    self.kill()
                    raise EdgeStartError(
                        f"edge {self.config.edge_id} did not answer /healthz in time",
                        details={"edge_id": self.config.edge_id},
                    )
                await asyncio.sleep(0.02)

    def _log_tail(self) -> str:
        text = ""
        for name in ("stderr.log", "error.log"):
            path = self.prefix / "logs" / name
            if path.exists():
                text += path.read_text(errors="replace")
        return text.strip()[-600:] or "no log output"

    def _workers(self) -> set[int]:
        if self._proc is None:
            return set()
        path = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children")
        try:
            return {int(pid) for pid in path.read_text().split()}
        except (OSError, ValueError):
            return set()

    async def reload_keys(self, keys: KeyRing, timeout_seconds: float = 10.0) -> None:
        """Swap the accepted keys (rotation) with a graceful reload (SIGHUP); returns once
        every worker that held the old keys has exited."""
        self.keys = keys
        self._write_keys()
        if self._proc is None or self._proc.poll() is not None:
            return
        old = self._workers()
        self._proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout_seconds
        while True:
            current = self._workers()
            if current and not current & old:
                return
            if time.monotonic() > deadline:
                raise EdgeStartError(
                    f"edge {self.config.edge_id} did not finish reloading",
                    details={"edge_id": self.config.edge_id},
                )
            await asyncio.sleep(0.02)

    async def stop(self, timeout_seconds: float = 10.0) -> None:
        """Fast shutdown (SIGTERM) and wait; SIGKILL the group if it lingers."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.wait, timeout_seconds)
        self.kill()

    def kill(self) -> None:
        """SIGKILL the master and its workers (its own process group)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:  # never signal a reaped (possibly reused) pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self._proc = None
