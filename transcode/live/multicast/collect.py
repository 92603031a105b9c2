"""The node's side of its multicast processes' metrics: prometheus_client's multiprocess mode.

Each channel's multicast output is a process of its own, so its ``transcode_multicast_*``
values cannot live in the node's registry. The node makes a directory private to this
node process (``tempfile.mkdtemp``: mode 0700, a new name each run, under ``TMPDIR``) and
starts every multicast process with ``PROMETHEUS_MULTIPROC_DIR`` set to it; prometheus_client
then keeps that process's values in files there (one set per pid), and a
``MultiProcessCollector`` on the node's registry sums them into the node's own ``/metrics``.
The node itself never has the variable: its other metrics stay ordinary in-memory values.

A new directory each run holds nothing from an earlier one, so a restarted node never
reports a previous run's series; a clean shutdown removes it (a node killed outright leaves
it to the system's temporary-file cleaning; should that cleaning remove it under a running
node, the next process started gets a new one). When a process ends, ``process_ended`` drops
its live gauges (``null_share``); its counters stay in the sum, so every counter only grows
until the node restarts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import struct
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The name prometheus_client still honours (deprecated): never passed on to a process.
_LEGACY_ENV = "prometheus_multiproc_dir"
# A metrics file's header (the bytes in use): shorter, its process is still creating it.
_HEADER_BYTES = 8


class _Collector(MultiProcessCollector):
    """``MultiProcessCollector`` that skips a file a starting process has not sized yet
    (read then, it fails the whole scrape, the node's own metrics with it), and answers a
    scrape racing the directory's removal with nothing rather than an error."""

    def __init__(self, registry: CollectorRegistry, where: Callable[[], Path | None]) -> None:
        # The directory now (a new one if the first was removed; None: not ours any more).
        self._where = where
        path = where()
        super().__init__(registry, path=str(path))

    def collect(self) -> Iterable[Metric]:
        """The processes' metrics, summed per channel (counters) or live-only (gauges)."""
        path = self._where()
        if path is None:
            return []
        files = [str(f) for f in path.glob("*.db") if _sized(f)]
        try:
            return self.merge(files, accumulate=True)
        except (OSError, struct.error) as err:
            log.warning("multicast metrics not read", extra={"error": str(err)})
            return []


def _sized(path: Path) -> bool:
    try:
        return path.stat().st_size >= _HEADER_BYTES
    except FileNotFoundError:  # a live gauge's file, its process marked dead meanwhile
        return False


class MulticastMetricsDir:
    """The directory the node's multicast processes write their metrics to, read into the
    node's registry; ``close`` at shutdown."""

    def __init__(self, registry: CollectorRegistry, *, parent: Path | None = None) -> None:
        self._parent = parent
        self.path = self._make()
        self._registry = registry
        self._collector = _Collector(registry, lambda: self.path if self._ours() else None)
        self._closed = False

    def _make(self) -> Path:
        path = Path(tempfile.mkdtemp(prefix="tc-multicast-metrics-", dir=self._parent))
        log.info("multicast metrics directory", extra={"path": str(path)})
        return path

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A multicast process's environment: ``base`` (this process's) with the directory.
        It must be there at exec: prometheus_client picks its value kind on import."""
        if not self._ours():
            # Removed under the node (a temporary-file cleaner, while no process had a file
            # there): a process could not count at all. Never the name again: in a shared
            # temporary directory anyone may have made it meanwhile.
            log.warning("multicast metrics directory gone; making another",
                        extra={"path": str(self.path)})  # fmt: skip
            self.path = self._make()
        env = {k: v for k, v in (os.environ if base is None else base).items()
               if k != _LEGACY_ENV}  # fmt: skip
        env[MULTIPROC_ENV] = str(self.path)
        return env

    def _ours(self) -> bool:
        try:
            facts = self.path.lstat()
        except FileNotFoundError:
            return False
        return stat.S_ISDIR(facts.st_mode) and facts.st_uid == os.geteuid()

    def process_ended(self, pid: int) -> None:
        """Drop an ended process's live gauges (its counters stay in the sum)."""
        if self._closed:
            return
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile: nothing to drop
            mark_process_dead(pid, str(self.path))

    def close(self) -> None:
        """Stop reading the directory and remove it (every process has ended by now)."""
        if self._closed:
            return
        self._closed = True
        self._registry.unregister(self._collector)
        shutil.rmtree(self.path, ignore_errors=True)
