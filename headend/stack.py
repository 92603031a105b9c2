"""The embedded local stack behind ``headend up``: Redis plus every service as a child.

Every child (the embedded redis-server too) runs in its own session, so its whole
process group can be killed, and gets ``PR_SET_PDEATHSIG``, so even a ``kill -9``
of ``headend up`` leaves no orphan. While the stack runs, a child that exits is
restarted after a backoff (:class:`headend.tasks.Backoff`); one that has already
been restarted ``HEADEND_RESTART_LIMIT`` times within
``HEADEND_RESTART_WINDOW_SECONDS`` makes the stack give up and stop. ``headend up``
is a child subreaper: what a dead child leaves behind (an FFmpeg, an nginx in a
group of its own) is adopted and killed. A normal stop sends SIGTERM in reverse
start order and escalates to SIGKILL after the grace period. Each child's output goes
to ``<var>/log/<child>.log``, or (``log_files=False``: roles under systemd or Kubernetes,
which collect it) to the stack's own stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from headend.procs import (
    ExitStatus,
    become_subreaper,
    exited,
    kill_group,
    reap_orphans,
    watch_signals,
    with_death_signal,
)
from headend.redisconn import RedisSettings, RedisUnreachable, connect_checked
from headend.redisproc import RedisServer
from headend.redisurl import redact
from headend.rpc import StartupError
from headend.settings import (
    Env,
    env_choice,
    env_float,
    env_int,
    env_redis_url,
    env_str,
    environ,
)
from headend.tasks import Backoff

log = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_WATCHED = (*_STOP_SIGNALS, signal.SIGCHLD)
_LOG_TAIL_LINES = 10


@dataclass(frozen=True, slots=True)
class StackSettings:
    """Where the local stack keeps its state, which ports it uses, how it restarts."""

    var_dir: Path
    redis_url: str | None
    appendfsync: str
    host: str
    base_port: int
    stop_grace_seconds: float
    restart_limit: int = 5
    restart_window_seconds: float = 60.0

    @classmethod
    def from_env(cls, env: Env) -> StackSettings:
        """Read ``HEADEND_VAR_DIR``, ``REDIS_URL``, ``REDIS_APPENDFSYNC``, ``HEADEND_HOST``,
        ``HEADEND_BASE_PORT``, ``HEADEND_STOP_GRACE_SECONDS``, ``HEADEND_RESTART_LIMIT``
        and ``HEADEND_RESTART_WINDOW_SECONDS``."""
        return cls(
            var_dir=Path(env_str(env, "HEADEND_VAR_DIR", "var")).resolve(),
            redis_url=env_redis_url(env),
            appendfsync=env_choice(env, "REDIS_APPENDFSYNC", "everysec", ("everysec", "always")),
            host=env_str(env, "HEADEND_HOST", "127.0.0.1"),
            base_port=env_int(env, "HEADEND_BASE_PORT", 0, low=0, high=65000),
            stop_grace_seconds=env_float(
                env, "HEADEND_STOP_GRACE_SECONDS", 10.0, low=0.1, high=600
            ),
            # 0: a crash stops the stack at once (no restarts).
            restart_limit=env_int(env, "HEADEND_RESTART_LIMIT", 5, low=0, high=1000),
            restart_window_seconds=env_float(
                env, "HEADEND_RESTART_WINDOW_SECONDS", 60.0, low=1, high=86_400
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
    """One service process: how to start it, the addresses it must own, what to print."""

    name: str
    argv: Sequence[str]
    ports: Sequence[tuple[str, int]]  # (bind host, port)
    env: Mapping[str, str] = field(default_factory=dict)
    endpoint: str = ""


@dataclass(frozen=True, slots=True)
class GaveUp:
    """A child that kept exiting past the restart limit: why the stack stopped."""

    child: str
    status: str  # "killed by SIGKILL", "exit code 1", "failed to start: ..."
    reason: str
    log_path: Path | None  # None: its output went to ours
    log_tail: tuple[str, ...]


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port``."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


_ANY_HOST = frozenset({"", "0.0.0.0", "::"})


def port_clashes(children: Sequence[Child]) -> list[str]:
    """Addresses configured for two children (or twice for one): both look free before the
    start, and the second to bind would fail after the first had started."""
    taken: list[tuple[str, str, int]] = []
    clashes = []
    for child in children:
        for host, port in child.ports:
            for other, other_host, other_port in taken:
                overlap = host == other_host or host in _ANY_HOST or other_host in _ANY_HOST
                if port == other_port and overlap:
                    clashes.append(f"{child.name}:{host}:{port} (also {other})")
            taken.append((child.name, host, port))
    return clashes


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def log_tail(path: Path | None, lines: int = _LOG_TAIL_LINES) -> tuple[str, ...]:
    """The last ``lines`` lines of a log file (each cut to 300 characters)."""
    if path is None:
        return ()
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ()
    return tuple(line[:300] for line in text.strip().splitlines()[-lines:])


class _Slot(ABC):
    """One supervised process: how to start and reap it, and its restart history."""

    def __init__(self, name: str, log_path: Path | None) -> None:
        self.name = name
        self.log_path = log_path
        self.started_at = 0.0
        self.failures = 0  # consecutive short runs, for the backoff
        self.restarts: deque[float] = deque()  # when each exit that was restarted happened
        self.due: float | None = None  # a pending restart (monotonic time)

    @property
    @abstractmethod
    def pid(self) -> int | None:
        """The running (or exited, unreaped) process's pid."""

    @abstractmethod
    def launch(self) -> None:
        """Start the process; raises ``StartupError`` or ``OSError`` when it cannot."""

    @abstractmethod
    def reap(self) -> None:
        """Collect the exited process."""


class _ChildSlot(_Slot):
    def __init__(self, child: Child, log_path: Path | None, redis_url: str) -> None:
        super().__init__(child.name, log_path)
        self.child = child
        self.redis_url = redis_url
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def launch(self) -> None:
        self.started_at = time.monotonic()
        env = {**os.environ, "REDIS_URL": self.redis_url, **self.child.env}
        env.pop("REDIS_URL_FILE", None)  # read once, here: a child given both would refuse
        with contextlib.ExitStack() as files:
            # No log file: its JSON lines go to our stderr (the journal, the pod's log).
            sink = (
                sys.stderr
                if self.log_path is None
                else files.enter_context(open(self.log_path, "ab"))
            )
            # Its own session: on exit, what is left of its group is killed with it.
            self.proc = subprocess.Popen(
                with_death_signal(self.child.argv), env=env, stdin=subprocess.DEVNULL,
                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def reap(self) -> None:
        if self.proc is not None:
            self.proc.wait()
            self.proc = None


class _RedisSlot(_Slot):
    def __init__(self, server: RedisServer) -> None:
        super().__init__("redis", server.log_file)
        self.server = server

    @property
    def pid(self) -> int | None:
        return self.server.pid

    def launch(self) -> None:
        self.started_at = time.monotonic()
        # The same data dir (its AOF) and socket: the services reconnect to the same URL.
        try:
            self.server.start()
        except StartupError:
            self.server.stop()  # forget a server that exited at start-up (already reaped)
            raise

    def reap(self) -> None:
        self.server.stop()  # already exited: this only collects it


class Stack:
    """Starts Redis (when embedded) and the children; keeps them running; stops them all."""

    def __init__(
        self,
        settings: StackSettings,
        *,
        out: Callable[[str], None] = print,
        log_files: bool = True,
    ) -> None:
        """``log_files``: each child's output to ``<var>/log/<child>.log``; else to our stderr
        (under systemd or Kubernetes, which collect it)."""
        self.settings = settings
        self._out = out
        self._log_files = log_files
        self._redis: _RedisSlot | None = None
        self._children: list[_ChildSlot] = []
        self.redis_url = settings.redis_url or settings.default_redis_url()
        # A run that outlived the window was healthy: its next exit backs off from the start.
        self.backoff = Backoff(healthy_after_seconds=settings.restart_window_seconds)
        # Orphans of a dead child (an FFmpeg, an nginx) are re-parented to us, not init,
        # so they can be killed and reaped instead of surviving the child.
        become_subreaper()

    @property
    def _slots(self) -> list[_Slot]:
        return ([self._redis] if self._redis is not None else []) + list(self._children)

    def pids(self) -> dict[str, int]:
        """Each running child's pid, by name."""
        return {s.name: pid for s in self._slots if (pid := s.pid) is not None}

    def start_redis(self) -> None:
        """Start the private redis-server unless ``REDIS_URL`` points elsewhere."""
        if self.settings.redis_url is not None:
            self._check_redis()
            self._out(f"redis      {redact(self.redis_url)} (external)")
            return
        server = RedisServer(
            self.settings.var_dir / "redis",
            appendfsync=self.settings.appendfsync,
            log_file=self.settings.var_dir / "log" / "redis.log",
        )
        self._redis = _RedisSlot(server)
        self._redis.launch()
        self._out(
            f"redis      {self.redis_url} (embedded, appendfsync {self.settings.appendfsync})"
        )

    def _check_redis(self) -> None:
        """PING the external Redis (a Sentinel set included) with the children's settings."""

        async def check() -> None:
            client = await connect_checked(self.redis_url, RedisSettings.from_env(environ()))
            await client.aclose()

        try:
            asyncio.run(check())
        except RedisUnreachable as err:
            raise StartupError(str(err)) from err

    def start(self, children: Sequence[Child], *, timeout_seconds: float = 30.0) -> None:
        """Check every port, then start each child and wait until its ports listen."""
        clashes = port_clashes(children)
        if clashes:
            raise StartupError(f"ports configured twice: {', '.join(clashes)}")
        busy = [f"{c.name}:{h}:{p}" for c in children for h, p in c.ports if not port_free(h, p)]
        if busy:
            raise StartupError(f"ports already in use: {', '.join(busy)}")
        logs = self.settings.var_dir / "log"
        if self._log_files:
            logs.mkdir(parents=True, exist_ok=True)
        for child in children:
            log_path = logs / f"{child.name}.log" if self._log_files else None
            slot = _ChildSlot(child, log_path, self.redis_url)
            slot.launch()
            self._children.append(slot)
            self._wait_ready(slot, timeout_seconds)
            if child.endpoint:
                self._out(f"{child.name:<10} {child.endpoint}")

    def _wait_ready(self, slot: _ChildSlot, timeout: float) -> None:
        assert slot.proc is not None
        deadline = time.monotonic() + timeout
        while not all(_listening(h, p) for h, p in slot.child.ports):
            if slot.proc.poll() is not None:
                status = ExitStatus.from_returncode(slot.proc.returncode)
                tail = log_tail(slot.log_path, 1)
                raise StartupError(
                    f"{slot.name} exited at start-up ({status}): "
                    f"{tail[0] if tail else '(no output)'}"
                )
            if time.monotonic() > deadline:
                raise StartupError(
                    f"{slot.name} did not listen on "
                    f"{', '.join(f'{h}:{p}' for h, p in slot.child.ports)} in {timeout}s"
                )
            time.sleep(0.05)

    def supervise(self, on_watching: Callable[[], None] = lambda: None) -> signal.Signals | GaveUp:
        """Keep every child running until SIGINT/SIGTERM (returned) or one gives up;
        ``on_watching`` runs once the stop signals are caught (say "up" there, not before)."""
        with watch_signals(_WATCHED) as waiter:
            if waiter is None:
                raise RuntimeError("supervise() must run in the main thread")
            on_watching()
            while True:
                gave_up = self._tend()
                if gave_up is not None:
                    return gave_up
                dues = [s.due for s in self._slots if s.due is not None]
                timeout = max(0.0, min(dues) - time.monotonic()) if dues else None
                received = waiter.wait(timeout)
                for sig in _STOP_SIGNALS:
                    if sig in received:
                        return sig

    def _tend(self) -> GaveUp | None:
        """Handle exited children, kill adopted orphans, run the restarts that are due."""
        for slot in self._slots:
            pid = slot.pid
            status = exited(pid) if pid is not None else None
            if pid is None or status is None:
                continue
            if status.code is not None or status.signal is not None:
                # Still unreaped, so its group id cannot have been reused: kill what is left.
                kill_group(pid)
            slot.reap()
            gave_up = self._after_exit(slot, str(status), status)
            if gave_up is not None:
                return gave_up
        reap_orphans(self.pids().values())
        now = time.monotonic()
        for slot in self._slots:
            if slot.due is not None and slot.due <= now:
                slot.due = None
                try:
                    slot.launch()
                except (StartupError, OSError) as err:
                    gave_up = self._after_exit(slot, f"failed to start: {err}", None)
                    if gave_up is not None:
                        return gave_up
                    continue
                log.info("child restarted", extra={"child": slot.name, "pid": slot.pid})
        return None

    def _after_exit(self, slot: _Slot, what: str, status: ExitStatus | None) -> GaveUp | None:
        """Schedule the slot's restart, or give up when it is past its restart limit."""
        now = time.monotonic()
        limit, window = self.settings.restart_limit, self.settings.restart_window_seconds
        while slot.restarts and slot.restarts[0] <= now - window:
            slot.restarts.popleft()
        if len(slot.restarts) >= limit:
            reason = (
                f"it was restarted {len(slot.restarts)} times in the last {window:g}s "
                f"(HEADEND_RESTART_LIMIT={limit}, HEADEND_RESTART_WINDOW_SECONDS={window:g})"
            )
            log.error(
                "child keeps exiting; giving up",
                extra={"child": slot.name, "exit": what, "restarts": len(slot.restarts)},
            )
            return GaveUp(slot.name, what, reason, slot.log_path, log_tail(slot.log_path))
        if now - slot.started_at >= self.backoff.healthy_after_seconds:
            slot.failures = 0
        slot.failures += 1
        delay = self.backoff.delay(slot.failures)
        slot.restarts.append(now)
        slot.due = now + delay
        fields: dict[str, str | int | float] = {
            "child": slot.name,
            "exit": what,
            "restarts": len(slot.restarts),
            "restart_limit": limit,
            "window_s": window,
            "next_delay_s": round(delay, 2),
        }
        if status is not None and status.code is not None:
            fields["exit_code"] = status.code
        if status is not None and status.signal is not None:
            fields["signal"] = signal.Signals(status.signal).name
        log.warning("child exited; restarting", extra=fields)
        return None

    def stop(self) -> None:
        """SIGTERM every child in reverse order, SIGKILL stragglers, stop Redis last."""
        # A second Ctrl-C or SIGTERM must not cut the stop short and leave children behind.
        with watch_signals(_WATCHED):
            self._stop()

    def _stop(self) -> None:
        for slot in reversed(self._children):
            if slot.proc is not None and slot.proc.poll() is None:
                slot.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.stop_grace_seconds
        for slot in reversed(self._children):
            proc = slot.proc
            if proc is None:
                continue
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("child did not stop in time; killing", extra={"child": slot.name})
            kill_group(proc.pid)  # stragglers, and whatever it left in its group
            proc.wait()
            slot.proc = None
        self._children.clear()
        self._reap_all_orphans()
        if self._redis is not None:
            self._redis.server.stop()
            self._redis = None
        self._reap_all_orphans()

    def _reap_all_orphans(self) -> None:
        # Each round kills the orphans found; their own children are adopted in turn.
        for _ in range(10):
            if not reap_orphans(self.pids().values(), block=True):
                return


def python_module(module: str) -> list[str]:
    """argv that runs ``python -m module`` with this interpreter."""
    return [sys.executable, "-m", module]
