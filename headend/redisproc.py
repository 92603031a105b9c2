"""A private ``redis-server`` on a Unix socket: the embedded default and the test fixture.

A Unix socket avoids port races between parallel runs and is what a
co-located headend would use anyway.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from headend.procs import with_death_signal
from headend.rpc import StartupError

FSYNC_POLICIES = ("everysec", "always", "no")


class RedisServer:
    """A ``redis-server`` child process with AOF persistence under ``data_dir``.

    ``port`` (0: none) also listens on 127.0.0.1 over TCP, which replicas, Sentinels
    and other hosts need; ``args`` are more ``redis-server`` options (e.g. ``--replicaof``).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        appendfsync: str = "everysec",
        log_file: Path | None = None,
        port: int = 0,
        args: tuple[str, ...] = (),
    ) -> None:
        if appendfsync not in FSYNC_POLICIES:
            raise ValueError(f"appendfsync must be one of {FSYNC_POLICIES}")
        self.data_dir = data_dir
        self.appendfsync = appendfsync
        self.socket = data_dir / "redis.sock"
        self.log_file = log_file or data_dir / "redis.log"
        self.port = port
        self.args = args
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL clients connect with."""
        return f"unix://{self.socket}"

    def start(self, timeout_seconds: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise StartupError("redis-server not found: install it (apt-get install redis-server)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        # A restart reuses the data dir (the AOF) and the socket path; a stale socket
        # file from a killed server would make the new one fail to bind.
        self.socket.unlink(missing_ok=True)
        args = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket), "--unixsocketperm", "700",
            "--dir", str(self.data_dir), "--appendonly", "yes",
            "--appendfsync", self.appendfsync, "--save", "", "--daemonize", "no",
            "--logfile", str(self.log_file), *self.args,
        ]  # fmt: skip
        # Its own session (a supervisor can kill its group); SIGTERM, which flushes the
        # AOF, if its owner dies, so a kill -9 of the owner leaves no server behind.
        self._proc = subprocess.Popen(
            with_death_signal(args), stdin=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout_seconds
        client = redis.Redis(unix_socket_path=str(self.socket))
        try:
            while True:
                if self._proc.poll() is not None:
                    log = self.log_file.read_text(errors="replace")[-500:]
                    raise StartupError(f"redis-server exited at start-up: {log.strip()}")
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, FileNotFoundError):
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise StartupError("redis-server did not answer within the start-up timeout")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, timeout_seconds: float = 10.0) -> None:
        """Stop gracefully (Redis flushes its AOF on SIGTERM)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout_seconds)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        """Kill with SIGKILL, as a crash would (for durability tests)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None else None
