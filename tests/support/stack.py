"""A real ``headend up`` to hurt: start it on a port range, find its processes by
walking ``/proc`` (psutil), check every child's health, read its restart lines."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import psutil
import pytest
import redis

from headend.local import (
    CDN_GRPC_PORT,
    EDGES,
    EPG_PORT,
    FRONT_DOOR_PORT,
    METRICS_PORTS,
    ORIGIN_PORT,
    SUBSCRIBER_PORT,
    TRANSCODE_PORT,
)

T = TypeVar("T")

# The role (see ``role``) of each child of ``headend up``.
ROLES = {
    "redis": "redis-server",
    "epg": "epg",
    "subscriber": "subscriber",
    "transcode": "transcode",
    "worker": "transcode.worker",
    "origin": "transcode.origin",
    "edges": "cdn_ctl.local",
    "cdn": "cdn_ctl",
}
# Processes that come and go by themselves: nginx's cache loader exits after its
# first pass; FFmpeg runs only while a job or a live channel does.
TRANSIENT = {"nginx: cache loader", "ffmpeg"}


def eventually(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """``check()``'s first truthy result, retried for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


class Up:
    """A running ``headend up``: its process, its output (read by threads), its var dir."""

    def __init__(self, var: Path, base: int, *args: str, **env: str) -> None:
        self.var = var
        self.base = base
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "headend", "up", *args],
            env={
                **os.environ,
                "HEADEND_VAR_DIR": str(var),
                "HEADEND_BASE_PORT": str(base),
                "CDN_EDGE_WORKERS": "1",  # few processes to account for
                **env,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = threading.Condition()
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, lines), daemon=True).start()

    def _read(self, stream: IO[str], lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_output(self, check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
        """Wait (woken by each new line) until ``check()`` is truthy."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = check()
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"timed out waiting for {what}; stderr:\n{''.join(self.err)}")
                self._changed.wait(left)

    def started(self) -> bool:
        """Wait until ``headend is up`` (True) or until it exits (False)."""
        self.wait_output(
            lambda: (
                any(x.startswith("headend is up") for x in self.out) or self.proc.poll() is not None
            ),
            "headend is up",
            timeout=60,
        )
        return self.proc.poll() is None

    def wait_up(self) -> None:
        """Until ``headend is up``, or fail with its output if it exits first."""
        if not self.started():
            pytest.fail("headend up exited:\n" + "".join(self.out + self.err))

    def port(self, default: int) -> int:
        """A service's port in this stack's range."""
        return self.base + default % 1000

    def restarts(self, child: str) -> list[dict[str, Any]]:
        """The structured restart lines logged for ``child``."""
        events = [json.loads(x) for x in list(self.err) if x.startswith("{")]
        return [e for e in events if e["msg"] == "child exited; restarting" and e["child"] == child]

    def child(self, name: str) -> psutil.Process:
        """The running child called ``name`` (one of ``ROLES``)."""
        found = [c for c in psutil.Process(self.proc.pid).children() if role(c) == ROLES[name]]
        assert len(found) == 1, f"{name}: {found}"
        return found[0]

    def admin_key(self) -> str:
        """The local stack's admin API key (``secrets.env``)."""
        for line in (self.var / "secrets.env").read_text().splitlines():
            name, _, value = line.partition("=")
            if name == "SERVICE_API_KEY":
                return value
        raise AssertionError("no SERVICE_API_KEY in secrets.env")

    def cli(self, *args: str) -> str:
        """``headend <args>`` against this stack, as an operator runs it (admin key)."""
        run = subprocess.run(
            [sys.executable, "-m", "headend", *args],
            env={
                **os.environ,
                "HEADEND_API_KEY": self.admin_key(),
                "TRANSCODE_TARGET": f"127.0.0.1:{self.port(TRANSCODE_PORT)}",
            },
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        return run.stdout

    def stop(self) -> None:
        """SIGTERM and wait; exit 0 expected."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0, "".join(self.err[-20:])


def start_up(var: Path, bases: Sequence[int], *args: str, **env: str) -> Up:
    """``headend up *args`` on the first of ``bases`` whose port range is free (another
    test run on this machine may hold one), or fail with its output."""
    up = None
    for base in bases:
        up = Up(var, base, *args, **env)
        if up.started():
            return up
        if "ports already in use" not in "".join(up.err):
            break
    assert up is not None
    pytest.fail("headend up exited:\n" + "".join(up.out + up.err))


def role(p: psutil.Process) -> str:
    """What a process is: a ``-m`` module, ``redis-server``, ``nginx: worker``, ``ffmpeg``."""
    try:
        cmd = p.cmdline()
    except psutil.Error:
        return "gone"
    text = " ".join(cmd)
    if "redis-server" in text:
        return "redis-server"
    if text.startswith("nginx: "):
        return text.split(" process")[0]  # "nginx: master", "nginx: worker", ...
    if cmd and cmd[0].endswith("ffmpeg"):
        return "ffmpeg"
    if len(cmd) >= 3 and cmd[-2] == "-m":
        return cmd[-1]
    return text


def platform(up: Up) -> tuple[set[int], dict[int, psutil.Process]]:
    """``headend up``'s descendants, and every process that belongs to the stack: those,
    those whose command line names its var dir, and anyone in their process groups."""
    descendants = {p.pid: p for p in psutil.Process(up.proc.pid).children(recursive=True)}
    procs = dict(descendants)
    everyone = list(psutil.process_iter())
    for p in everyone:
        with contextlib.suppress(psutil.Error):
            if str(up.var) in " ".join(p.cmdline()):
                procs[p.pid] = p
    groups = set()
    for pid in procs:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    groups.discard(os.getpgrp())  # ours and headend up's: not the stack's
    for p in everyone:
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(p.pid) in groups:
                procs[p.pid] = p
    return set(descendants), procs


def shape(up: Up) -> Counter[str] | None:
    """Processes of the stack by role; None while any of them is orphaned or a zombie."""
    descendants, procs = platform(up)
    counts: Counter[str] = Counter()
    for pid, p in procs.items():
        with contextlib.suppress(psutil.Error):
            if pid not in descendants or p.status() == psutil.STATUS_ZOMBIE:
                return None
            name = role(p)
            if name not in TRANSIENT:
                counts[name] += 1
    return counts


# Run in a child process: gRPC threads in the test process would make a later fork()
# there (a ``preexec_fn`` spawn, such as an nginx edge's) run gRPC's fork handlers.
_HEALTH = """
import sys, grpc
from grpc_health.v1 import health_pb2 as pb, health_pb2_grpc as pb_grpc
for port in sys.argv[1:]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            ok = pb_grpc.HealthStub(channel).Check(pb.HealthCheckRequest(), timeout=1).status
        except grpc.RpcError:
            ok = None
    if ok != pb.HealthCheckResponse.SERVING:
        print(port)
"""


def grpc_not_serving(ports: Sequence[int]) -> set[int]:
    """The ports whose gRPC server does not report SERVING (checked from a child process)."""
    run = subprocess.run(
        [sys.executable, "-c", _HEALTH, *map(str, ports)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return {int(word) for word in run.stdout.split()} if run.returncode == 0 else set(ports)


def http_ok(url: str, body: str = "") -> bool:
    """True when ``url`` answers 200 with ``body`` in it."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200 and body in resp.read().decode(errors="replace")
    except OSError:
        return False


def redis_ok(up: Up) -> bool:
    """True when the stack's embedded Redis answers PING."""
    client = redis.Redis(unix_socket_path=str(up.var / "redis" / "redis.sock"))
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def unhealthy(up: Up) -> list[str]:
    """What does not answer its health check (empty when the whole stack is well)."""
    grpc_ports = {
        "epg": EPG_PORT,
        "subscriber": SUBSCRIBER_PORT,
        "transcode": TRANSCODE_PORT,
        "cdn": CDN_GRPC_PORT,
    }
    down = grpc_not_serving([up.port(p) for p in grpc_ports.values()])
    failing = [name for name, port in grpc_ports.items() if up.port(port) in down]
    http = {  # name: (port, path, what the body must hold)
        "front door": (FRONT_DOOR_PORT, "healthz", ""),
        "worker": (METRICS_PORTS["TC_WORKER"], "metrics", ""),
        "origin": (ORIGIN_PORT, "healthz", ""),
        **{edge_id: (port, "healthz", f"ok {edge_id}") for edge_id, _, port in EDGES},
    }
    for name, (port, path, body) in http.items():
        if not http_ok(f"http://127.0.0.1:{up.port(port)}/{path}", body):
            failing.append(name)
    if not redis_ok(up):
        failing.append("redis")
    return failing


def process_group(p: psutil.Process) -> list[psutil.Process]:
    """``p``, its descendants, and the members of its process group (if it leads one)."""
    found = {p.pid: p, **{c.pid: c for c in p.children(recursive=True)}}
    for q in psutil.process_iter():
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(q.pid) == p.pid:
                found[q.pid] = q
    return list(found.values())
