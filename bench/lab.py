"""Boxes in the rural link lab, their QoE figures, the table and the SVG plots.

A village's boxes run in one process inside its network namespace
(:func:`tests.support.lab.run_in_village`), each box with its own address (so its own
shaped link) and its own HTTP client, playing with the adaptive player
(:mod:`cdn_ctl.sim.abr`): through the front door (:func:`play_village`) or straight from
a synthetic HLS channel (:func:`play_direct`). The plots reuse the console's bar
geometry (:func:`console.charts.bar_chart`), drawn as standalone SVG.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from html import escape
from pathlib import Path

import aiohttp

from bench.journey import percentile
from cdn_ctl.domain import Edge
from cdn_ctl.sim.abr import AdaptivePlayer, BoxSource, DirectSource, Qoe, Source
from cdn_ctl.sim.stb import SetTopBox
from cdn_ctl.store import EdgeStore
from console.charts import bar_chart
from tests.support.journey import Stack

# Boxes log in first, then all villages switch on together at a given wall time, spread
# over this long (so logins and the client processes' start-up do not load the platform
# while another village's boxes measure their startup); log in this many at a time.
SPREAD_SECONDS = 2.0
LOGIN_CONCURRENCY = 10
TIMEOUT = aiohttp.ClientTimeout(total=60)

Played = tuple[list[Qoe], list[str]]  # sessions, and the boxes that failed (why)


async def _boxes(
    addresses: Sequence[str], source: Callable[[aiohttp.ClientSession, int], Awaitable[Source]],
    seconds: float, start_at: float,
) -> Played:  # fmt: skip
    """Each box (one per address) plays ``seconds`` from its own source, from ``start_at``
    (epoch seconds)."""

    async def one(i: int, address: str) -> Qoe:
        connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as http:
            src = await source(http, i)
            wait = max(0.0, start_at - time.time())
            await asyncio.sleep(wait + random.uniform(0, SPREAD_SECONDS))
            return await AdaptivePlayer(src).play(seconds)

    results = await asyncio.gather(
        *(one(i, a) for i, a in enumerate(addresses)), return_exceptions=True
    )
    sessions = [r for r in results if isinstance(r, Qoe)]
    failed = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return sessions, failed


def play_village(
    front_door: str, creds: list[tuple[str, str]], addresses: Sequence[str], channel: str,
    seconds: float, start_at: float,
) -> Played:  # fmt: skip
    """Boxes log in at the front door and play ``channel`` (run inside the village)."""
    gate = asyncio.Semaphore(LOGIN_CONCURRENCY)

    async def source(http: aiohttp.ClientSession, i: int) -> Source:
        box = SetTopBox(http, front_door, mac=creds[i][0], secret=creds[i][1])
        async with gate:
            await box.login()
        return BoxSource(box, channel)

    return asyncio.run(_boxes(addresses, source, seconds, start_at))


def play_direct(
    master_url: str, addresses: Sequence[str], seconds: float, start_at: float
) -> Played:
    """Boxes play the HLS master at ``master_url`` (run inside the village)."""

    async def source(http: aiohttp.ClientSession, _: int) -> Source:
        return DirectSource(http, master_url)

    return asyncio.run(_boxes(addresses, source, seconds, start_at))


async def edges_at(stack: Stack, host: str) -> None:
    """Register the stack's edges at the lab's service address, so boxes reach them over
    their links (the routing face's next refresh hands out the new address)."""
    store: EdgeStore = stack.controller.store
    for edge in await store.all():
        moved: Edge = replace(edge, host=host, version=edge.version + 1)
        await store.replace(moved, expected_version=edge.version)
    await stack.controller.refresh()


@dataclass(frozen=True, slots=True)
class Summary:
    """One group of sessions (a profile and channel, or a ladder) in figures."""

    name: str
    sessions: int
    failed: int
    startup_p50: float
    startup_p95: float
    rebuffer_ratio: float  # all stall time over all watch time
    avg_kbps: float  # mean of the sessions' time-weighted averages
    switches: float  # per session
    stalls: float  # per session
    skipped: int
    errors: int

    def row(self) -> str:
        """The summary as one table row."""
        return (
            f"{self.name:<28} {self.sessions:>4} {self.failed:>4} {self.startup_p50:>7.2f} "
            f"{self.startup_p95:>7.2f} {self.rebuffer_ratio * 100:>8.2f}% "
            f"{self.avg_kbps:>8.0f} {self.switches:>6.2f} {self.stalls:>6.2f} "
            f"{self.skipped:>5} {self.errors:>5}"
        )


HEADER = (
    f"{'profile / channel':<28} {'ok':>4} {'fail':>4} {'start50':>7} {'start95':>7} "
    f"{'rebuffer':>9} {'avg kb/s':>8} {'switch':>6} {'stalls':>6} {'skip':>5} {'err':>5}"
)


def summarise(name: str, played: Played) -> Summary:
    """A group's sessions in figures (startup in seconds)."""
    sessions, failed = played
    startups = sorted(q.startup_seconds for q in sessions if not math.isnan(q.startup_seconds))
    watch = sum(q.watch_seconds for q in sessions)
    n = max(1, len(sessions))
    return Summary(
        name=name,
        sessions=len(sessions),
        failed=len(failed) + sum(1 for q in sessions if math.isnan(q.startup_seconds)),
        startup_p50=percentile(startups, 50),
        startup_p95=percentile(startups, 95),
        rebuffer_ratio=sum(q.stall_seconds for q in sessions) / watch if watch else 0.0,
        avg_kbps=sum(q.avg_bitrate_bps for q in sessions) / n / 1000,
        switches=sum(q.switches for q in sessions) / n,
        stalls=sum(q.stalls for q in sessions) / n,
        skipped=sum(q.skipped for q in sessions),
        errors=sum(len(q.errors) for q in sessions),
    )


def svg_bars(title: str, unit: str, points: Sequence[tuple[str, float]]) -> str:
    """A standalone SVG bar chart of ``points`` (the console's geometry, values rounded)."""
    chart = bar_chart([(label, round(value)) for label, value in points], label_every=1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {chart.width} '
        f'{chart.height + 24}" font-family="sans-serif" font-size="11">',
        f'<text x="4" y="14" font-weight="bold">{escape(title)} ({escape(unit)})</text>',
        '<g transform="translate(0,20)">',
        f'<line x1="40" y1="{chart.baseline}" x2="{chart.width}" y2="{chart.baseline}" '
        'stroke="#444"/>',
        f'<text x="36" y="18" text-anchor="end">{chart.top}</text>',
        f'<text x="36" y="{chart.baseline}" text-anchor="end">0</text>',
    ]
    for bar in chart.bars:
        parts += [
            f'<rect x="{bar.x}" y="{bar.y}" width="{bar.width}" height="{bar.height}" '
            f'fill="#3b6ea5"><title>{bar.value}</title></rect>',
            f'<text x="{round(bar.x + bar.width / 2, 1)}" y="{bar.y - 2}" text-anchor="middle">'
            f"{bar.value}</text>",
            f'<text x="{bar.x}" y="{chart.height - 4}">{escape(bar.label)}</text>',
        ]
    return "\n".join([*parts, "</g>", "</svg>"]) + "\n"


def write_plots(directory: Path, prefix: str, summaries: Sequence[Summary]) -> list[Path]:
    """Startup p95, rebuffer ratio and average bitrate per group, one SVG each."""
    directory.mkdir(parents=True, exist_ok=True)
    plots = {
        "startup-p95": ("startup p95", "ms", [(s.name, s.startup_p95 * 1000) for s in summaries]),
        "rebuffer": ("rebuffer ratio", "per 10,000", [(s.name, s.rebuffer_ratio * 1e4)
                                                       for s in summaries]),
        "bitrate": ("time-weighted average bitrate", "kb/s", [(s.name, s.avg_kbps)
                                                               for s in summaries]),
    }  # fmt: skip
    written = []
    for key, (title, unit, points) in plots.items():
        path = directory / f"{prefix}-{key}.svg"
        path.write_text(svg_bars(title, unit, points))
        written.append(path)
    return written
