"""A live channel's files on disk: written whole or not at all, moved all together or not
at all, and the numbering a restart continues from."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def next_sequence_on_disk(channel_dir: Path) -> int:
    """One past the highest segment number under ``channel_dir`` (0 if none)."""
    highest = -1
    try:
        rungs = [e for e in os.scandir(channel_dir) if e.is_dir() and not e.name.startswith(".")]
    except FileNotFoundError:
        return 0
    for rung in rungs:
        with os.scandir(rung.path) as entries:
            for entry in entries:
                stem, dot, ext = entry.name.partition(".")
                if dot and ext == "ts" and stem.isdigit():
                    highest = max(highest, int(stem))
    return highest + 1


def move_all(pairs: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """Rename every (src, dest), or none: a failure puts back the ones already moved."""
    done: list[tuple[Path, Path]] = []
    try:
        for src, dest in pairs:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
            done.append((src, dest))
    except OSError:
        for src, dest in reversed(done):
            try:
                os.replace(dest, src)
            except OSError:
                log.exception("could not put a segment back", extra={"segment": str(dest)})
        raise
    return done


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``path`` through a temporary beside it: readers see the old file or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a half-written temporary would hold space on a full disk
        raise
