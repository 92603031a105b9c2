"""Local nginx edges: render an edge's configuration and run nginx as a child process.

Each edge is a ``proxy_cache`` with a cache lock (one upstream fetch per
object per village), a cache key without the token, the origin's
Cache-Control honoured (fallback TTLs short for playlists and long for
segments), an upstream to its parent tier or the origin, ``/healthz`` for
probes, signed-URL verification in njs (``edge_verify.js``) with the keys
in an included ``keys.conf``, so edges never call back to the controller, and
traffic counters the controller reads (``edge_stats.js``).
The access log records the scope path only, never the token. The configuration
itself (canonical paths only, slow-client timeouts, per-client limits, GET/HEAD
only) is rendered by :mod:`cdn_ctl.edge_conf`, whose names are re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from importlib import resources
from pathlib import Path

import aiohttp

from cdn_ctl.edge_conf import (
    NJS_MODULE,
    PLAYLIST_TYPES,
    STATS_PATH,
    EdgeConfig,
    render_keys_conf,
    render_nginx_conf,
)
from cdn_ctl.errors import EdgeStartError
from cdn_ctl.signing import KeyRing
from headend.procs import with_death_signal

__all__ = [
    "NJS_MODULE",
    "PLAYLIST_TYPES",
    "STATS_PATH",
    "EdgeConfig",
    "EdgeProcess",
    "render_keys_conf",
    "render_nginx_conf",
]


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
        """Render nginx.conf, keys.conf and the njs scripts into the prefix; the traffic
        counters start again from zero under a new epoch."""
        shutil.rmtree(self.prefix / "stats", ignore_errors=True)
        for sub in ("logs", "cache", "tmp", "stats"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        for script in ("edge_verify.js", "edge_stats.js"):
            text = resources.files("cdn_ctl").joinpath(script).read_text()
            (self.prefix / script).write_text(text)
        self._write_keys()
        conf = self.prefix / "nginx.conf"
        conf.write_text(render_nginx_conf(self.config, self.prefix, epoch=secrets.token_hex(8)))
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
            # The kernel sends nginx SIGTERM if its parent dies, so even a kill -9 of
            # `headend up` leaves no orphan edge holding the port.
            self._proc = subprocess.Popen(  # noqa: ASYNC220
                with_death_signal(
                    [binary, "-p", str(self.prefix), "-c", str(conf), "-g", "daemon off;"]
                ),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,  # its own group: kill() reaches the workers too
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
