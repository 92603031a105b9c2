"""The embedded local stack behind ``headend up``: Redis plus every service as a child.

Children get ``PR_SET_PDEATHSIG`` so that even a ``kill -9`` of ``headend up``
leaves no orphan; a normal stop sends SIGTERM in reverse start order and
escalates to SIGKILL after the grace period.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from headend.redisproc import RedisServer
from headend.rpc import StartupError
from headend.settings import Env, env_choice, env_float, env_int, env_redis_url, env_str

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StackSettings:
    """Where the local stack keeps its state and which ports it uses."""

    var_dir: Path
    redis_url: str | None
    appendfsync: str
    host: str
    base_port: int
    stop_grace_seconds: float

    @classmethod
    def from_env(cls, env: Env) -> StackSettings:
        """Read ``HEADEND_VAR_DIR``, ``REDIS_URL``, ``REDIS_APPENDFSYNC``, ``HEADEND_HOST``,
        ``HEADEND_BASE_PORT`` and ``HEADEND_STOP_GRACE_SECONDS``."""
        return cls(
            var_dir=Path(env_str(env, "HEADEND_VAR_DIR", "var")).resolve(),
            redis_url=env_redis_url(env),
            appendfsync=env_choice(env, "REDIS_APPENDFSYNC", "everysec", ("everysec", "always")),
            host=env_str(env, "HEADEND_HOST", "127.0.0.1"),
            base_port=env_int(env, "HEADEND_BASE_PORT", 0, low=0, high=65000),
            stop_grace_seconds=env_float(
                env, "HEADEND_STOP_GRACE_SECONDS", 10.0, low=0.1, high=600
            ),
        )

    def port(self, default: int) -> int:
        """A service's port: its default, or shifted so that ``base_port`` replaces 8000."""
        return default if self.base_port == 0 else self.base_port + (default % 1000)

    def default_redis_url(self) -> str:
        """The embedded Redis's URL."""
        return f"unix://{self.var_dir / 'redis' / 'redis.sock'}"


@dataclass(frozen=True, slots=True)
class Child:
    """One service process: how to start it, the ports it must own, what to print."""

    name: str
    argv: Sequence[str]
    ports: Sequence[int]
    env: Mapping[str, str] = field(default_factory=dict)
    endpoint: str = ""


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG = 1: the kernel sends SIGTERM when the parent dies.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port``."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class Stack:
    """Starts Redis (when embedded) and the children; stops them all."""

    def __init__(self, settings: StackSettings, *, out: Callable[[str], None] = print) -> None:
        self.settings = settings
        self._out = out
        self._redis: RedisServer | None = None
        self._procs: list[tuple[Child, subprocess.Popen[bytes]]] = []
        self.redis_url = settings.redis_url or settings.default_redis_url()

    def start_redis(self) -> None:
        """Start the private redis-server unless ``REDIS_URL`` points elsewhere."""
        if self.settings.redis_url is not None:
            self._check_redis()
            self._out(f"redis      {self.redis_url} (external)")
            return
        self._redis = RedisServer(
            self.settings.var_dir / "redis", appendfsync=self.settings.appendfsync
        )
        self._redis.start()
        self._out(
            f"redis      {self.redis_url} (embedded, appendfsync {self.settings.appendfsync})"
        )

    def _check_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2)
        try:
            client.ping()
        except (redis.RedisError, OSError) as err:
            raise StartupError(f"cannot reach Redis at {self.redis_url}: {err}") from err
        finally:
            client.close()

    def start(self, children: Sequence[Child], *, timeout_seconds: float = 30.0) -> None:
        """Check every port, then start each child and wait until its ports listen."""
        busy = [
            f"{c.name}:{p}"
            for c in children
            for p in c.ports
            if not port_free(self.settings.host, p)
        ]
        if busy:
            raise StartupError(f"ports already in use: {', '.join(busy)}")
        logs = self.settings.var_dir / "log"
        logs.mkdir(parents=True, exist_ok=True)
        for child in children:
            env = {**os.environ, "REDIS_URL": self.redis_url, **child.env}
            with open(logs / f"{child.name}.log", "ab") as sink:
                proc = subprocess.Popen(
                    list(child.argv), env=env, stdin=subprocess.DEVNULL, stdout=sink,
                    stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                )  # fmt: skip
            self._procs.append((child, proc))
            self._wait_ready(child, proc, timeout_seconds)
            if child.endpoint:
                self._out(f"{child.name:<10} {child.endpoint}")

    def _wait_ready(self, child: Child, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(_listening(self.settings.host, p) for p in child.ports):
            if proc.poll() is not None:
                tail = self._log_tail(child.name)
                raise StartupError(f"{child.name} exited with {proc.returncode}: {tail}")
            if time.monotonic() > deadline:
                raise StartupError(f"{child.name} did not listen on {child.ports} in {timeout}s")
            time.sleep(0.05)

    def _log_tail(self, name: str) -> str:
        path = self.settings.var_dir / "log" / f"{name}.log"
        lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
        return lines[-1] if lines else "(no output)"

    def failed(self) -> str | None:
        """The name of a child that has exited, if any."""
        for child, proc in self._procs:
            if proc.poll() is not None:
                return child.name
        return None

    def stop(self) -> None:
        """SIGTERM every child in reverse order, SIGKILL stragglers, stop Redis last."""
        for _, proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.stop_grace_seconds
        for child, proc in reversed(self._procs):
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("child did not stop in time; killing", extra={"child": child.name})
                proc.kill()
                proc.wait()
        self._procs.clear()
        if self._redis is not None:
            self._redis.stop()
            self._redis = None


def python_module(module: str) -> list[str]:
    """argv that runs ``python -m module`` with this interpreter."""
    return [sys.executable, "-m", module]
