"""Child-process hygiene: die with the parent, kill whole groups, adopt and reap orphans.

Shared by ``headend up`` (its children), the embedded redis-server and FFmpeg
runs, so that no process outlives the one that owns it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shutil
import signal
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

_PR_SET_CHILD_SUBREAPER = 36
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def with_death_signal(argv: Sequence[str], sig: signal.Signals = signal.SIGTERM) -> list[str]:
    """``argv`` wrapped so that the kernel sends it ``sig`` when its parent dies.

    Through util-linux's ``setpriv --pdeathsig``, not a ``preexec_fn``: a ``preexec_fn``
    makes ``subprocess`` fork() instead of vfork(), which runs gRPC's fork handlers in a
    process with gRPC threads, and those can crash it (seen: "Check failed:
    next_worker->state == KICKED"). The kernel tracks the parent *thread*: spawn from a
    long-lived one. Without setpriv ``argv`` is returned as is.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return list(argv)
    return [setpriv, f"--pdeathsig={sig.name.removeprefix('SIG')}", "--", *argv]


def become_subreaper() -> None:
    """Adopt orphaned descendants (a killed child's grandchildren) instead of init."""
    if _prctl(_PR_SET_CHILD_SUBREAPER, 1) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


class ExitStatus(NamedTuple):
    """How a process ended: an exit code, or the signal that killed it."""

    code: int | None
    signal: int | None

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitStatus:
        """From ``Popen.returncode`` (negative for a signal)."""
        return cls(None, -returncode) if returncode < 0 else cls(returncode, None)

    def __str__(self) -> str:
        if self.signal is not None:
            return f"killed by {signal.Signals(self.signal).name}"
        if self.code is None:
            return "exited (status collected elsewhere)"
        return f"exit code {self.code}"


def exited(pid: int) -> ExitStatus | None:
    """The child's status once it has exited, without reaping it (None while it runs).

    Left unreaped, its pid (and so its process group id) cannot be reused, so the
    caller can still kill what is left of the group before reaping it.
    """
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return ExitStatus(None, None)  # already reaped elsewhere
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return ExitStatus(info.si_status, None)
    return ExitStatus(None, info.si_status)


def kill_group(pgid: int) -> None:
    """SIGKILL every process in group ``pgid`` (gone already is fine)."""
    if pgid <= 1 or pgid == os.getpgrp():
        return  # never our own group, never init's
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def children() -> list[int]:
    """Pids whose parent is this process (read from ``/proc``)."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # The command name may hold spaces or parentheses: fields follow the last ")".
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == me:
            found.append(int(entry.name))
    return found


def reap_orphans(known: Collection[int], *, block: bool = False) -> list[int]:
    """SIGKILL adopted orphans (children not in ``known``) and their groups; reap them.

    Non-blocking by default: a killed orphan not yet dead is reaped on its SIGCHLD.
    Returns the pids found.
    """
    found = [pid for pid in children() if pid not in known]
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pid:
                kill_group(pid)
            os.kill(pid, signal.SIGKILL)
    for pid in found:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0 if block else os.WNOHANG)
    return found


class SignalPipe:
    """Signals as readable bytes on a pipe (``signal.set_wakeup_fd``).

    Whichever thread the kernel delivers a signal to, the C-level handler writes its
    number to the pipe, so the main thread's ``select`` wakes; no mask juggling.
    """

    def __init__(self, read_fd: int) -> None:
        self._fd = read_fd

    def wait(self, timeout: float | None) -> set[int]:
        """The signals received, waiting up to ``timeout`` seconds (None: forever)."""
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return set()
        try:
            return set(os.read(self._fd, 512))
        except BlockingIOError:
            return set()


@contextmanager
def watch_signals(watched: Iterable[signal.Signals]) -> Iterator[SignalPipe | None]:
    """Note ``watched`` signals on a pipe instead of acting on them (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield None  # handlers can only be set from the main thread
        return
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in watched}
    old_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    try:
        yield SignalPipe(read_fd)
    finally:
        signal.set_wakeup_fd(old_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(read_fd)
        os.close(write_fd)
