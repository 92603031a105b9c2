"""Publishing a packaged tree atomically: staged beside the destination, then swapped in.

Everything is written into a hidden sibling of the destination
(``.{name}.tmp-{token}`` on the same file system); then the sibling and the
destination are swapped with ``renameat2(RENAME_EXCHANGE)`` (one atomic step: a
reader sees the old tree or the new one, never a mix or nothing), and the old
tree is removed. Where the kernel or file system lacks the exchange, two renames
are used (the old tree steps aside, the new one takes its name), leaving a window
of microseconds in which the path does not exist but never one in which it is
half-written.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import shutil
from pathlib import Path


def staging_dir(dest: Path, work_dir: Path | None) -> Path:
    """A fresh hidden directory name for staging ``dest``, under ``work_dir`` or beside it."""
    parent = work_dir if work_dir is not None else dest.parent
    parent.mkdir(parents=True, exist_ok=True)
    return parent / f".{dest.name}.tmp-{secrets.token_hex(6)}"


def discard(staged: Path) -> None:
    """Remove a staged tree that will not be published."""
    shutil.rmtree(staged, ignore_errors=True)


def publish_tree(staged: Path, dest: Path) -> None:
    """Make ``staged`` appear at ``dest`` atomically, replacing an earlier tree (see module doc)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if staged.parent.resolve() != dest.parent.resolve():
        # Staged in another folder: move it next to dest first, so the swap is one rename
        # (a copy only when that folder is on another file system).
        sibling = staging_dir(dest, None)
        try:
            os.rename(staged, sibling)
        except OSError as err:
            if err.errno != errno.EXDEV:
                raise
            shutil.copytree(staged, sibling)
            shutil.rmtree(staged, ignore_errors=True)
        staged = sibling
    if not dest.exists():
        try:
            os.rename(staged, dest)
            return
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise  # someone published concurrently: fall through and swap
    if _exchange(staged, dest):
        shutil.rmtree(staged, ignore_errors=True)  # now holds the previous output
        return
    old = dest.with_name(f".{dest.name}.old-{secrets.token_hex(4)}")
    os.rename(dest, old)
    os.rename(staged, dest)
    shutil.rmtree(old, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with renameat2(RENAME_EXCHANGE); False when unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    c_int, c_path = ctypes.c_int, ctypes.c_char_p
    renameat2.argtypes = [c_int, c_path, c_int, c_path, ctypes.c_uint]
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))
