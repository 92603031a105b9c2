"""Helpers for the control-plane tests: longer sources and worker subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def looped(source: Path, dest: Path, seconds: int) -> Path:
    """``source`` looped by stream copy to ``seconds`` long (quick: no re-encode)."""
    subprocess.run(
        ["ffmpeg", "-y", "-hide_banner", "-nostdin", "-loglevel", "error",
         "-stream_loop", "-1", "-i", str(source), "-c", "copy", "-t", str(seconds), str(dest)],
        check=True,
    )  # fmt: skip
    return dest


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: split after it.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def kill_group(pid: int) -> None:
    """SIGKILL the process group ``pid`` leads (FFmpeg runs in its own session)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m transcode.worker`` as a real process, its JSON log in ``log``."""
    with log.open("ab") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "transcode.worker"],
            env={**os.environ, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
