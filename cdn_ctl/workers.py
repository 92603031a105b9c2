"""The HTTP worker processes' metrics, exposed as one (``CDN_HTTP_WORKERS`` above 1).

With several workers the HTTP faces share their ports (``SO_REUSEPORT``): the kernel
hands each connection, a Prometheus scrape included, to any one of them, and each worker
is a replica of its own, with its own route ledger, health monitor and registry. So each
worker also serves its registry on a Unix socket in a directory made for this run (mode
0700, removed when the process ends), and whichever worker answers ``/metrics`` adds its
siblings' series to its own, each labelled with the ``worker`` it came from. Counters
then sum across workers in PromQL (``sum without (worker)``), the per-replica gauges
(edge state, leases held, hit ratio) keep their meaning as one replica's view, a removed
edge's series go with it, and a restarted worker's counters start again, which
``rate()`` reads as a reset. A sibling that does not answer (starting, restarting) is
left out of that scrape.

Not prometheus_client's multiprocess mode: it picks its value store when the library is
imported (before any settings are read, and for the gRPC server's metrics in the same
process too), needs an aggregation mode per gauge where these gauges are per replica, and
keeps a gauge's series in its files after ``remove()``, so an edge taken out of the
registry would be reported forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from headend.metrics import CONTENT_TYPE, render

log = logging.getLogger(__name__)

WORKER_LABEL = "worker"
_SOCKET_SUFFIX = ".sock"
_TIMEOUT = aiohttp.ClientTimeout(total=5)


def socket_path(directory: Path, index: int) -> Path:
    """Where worker ``index`` serves its own registry."""
    return directory / f"w{index}{_SOCKET_SUFFIX}"


class _Families(Collector):
    """Already-collected families, handed to the text renderer as they are."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def merge(texts: dict[str, str]) -> bytes:
    """Several registries' Prometheus text as one, each series labelled with its worker
    (``texts``: worker -> text)."""
    families: dict[str, Metric] = {}
    for worker, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = Metric(family.name, family.documentation, family.type, family.unit)
                families[family.name] = merged
            merged.samples += [
                sample._replace(labels={**sample.labels, WORKER_LABEL: worker})
                for sample in family.samples
            ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families.values()))
    return render(registry)


class WorkerMetrics:
    """One worker's part: serve its registry to its siblings, and render all of theirs."""

    def __init__(self, directory: Path, index: int, *, own: Callable[[], bytes]) -> None:
        """``own``: this worker's metrics as Prometheus text, brought up to date."""
        self.directory = directory
        self.index = index
        self._own_text = own
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Serve this worker's registry on its socket."""
        app = web.Application()
        app.router.add_get("/metrics", self._own)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        path = socket_path(self.directory, self.index)
        path.unlink(missing_ok=True)  # a previous run of this worker index
        await web.UnixSite(self._runner, str(path)).start()

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _own(self, request: web.Request) -> web.Response:
        return web.Response(body=self._own_text(), headers={"Content-Type": CONTENT_TYPE})

    async def render(self) -> bytes:
        """Every worker's series (this one's and each sibling's that answers), labelled."""
        own = socket_path(self.directory, self.index)
        siblings = sorted(p for p in self.directory.glob(f"w*{_SOCKET_SUFFIX}") if p != own)
        texts = {str(self.index): self._own_text().decode()}
        for path, text in zip(
            siblings, await asyncio.gather(*(_fetch(p) for p in siblings)), strict=True
        ):
            if text is not None:
                texts[path.name.removesuffix(_SOCKET_SUFFIX).removeprefix("w")] = text
        return merge(texts)


async def _fetch(path: Path) -> str | None:
    """A sibling's own metrics, or None when it does not answer."""
    try:
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(path)), timeout=_TIMEOUT
            ) as http,
            http.get("http://worker/metrics") as resp,
        ):
            resp.raise_for_status()
            return await resp.text()
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        log.debug("worker metrics unavailable", extra={"socket": path.name, "error": str(err)})
        return None
