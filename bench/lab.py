"""Boxes in the rural link lab, their QoE figures, the table and the SVG plots.

A village's boxes run in one process inside its network namespace
(:func:`tests.support.lab.run_in_village`), each box with its own address (so its own
shaped link) and its own HTTP client, playing with the adaptive player
(:mod:`cdn_ctl.sim.abr`): through the front door (:func:`play_village`) or straight from
a synthetic HLS channel (:func:`play_direct`). Boxes log in before the measured start and
switch on over a ramp (see :data:`LOGIN_CONCURRENCY`'s comment). Each session's startup
is split into :data:`PHASES`; each village process reports its own event loop's lag, so
a harness that fell behind shows in the table instead of in the figures. The plots reuse
the console's bar geometry (:func:`console.charts.bar_chart`), drawn as standalone SVG
(and stacked for the startup phases).
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
from cdn_ctl.sim.abr import AdaptivePlayer, Qoe
from cdn_ctl.sim.sources import BoxSource, DirectSource, Source, first_byte_trace
from cdn_ctl.sim.stb import SetTopBox
from cdn_ctl.store import EdgeStore
from console.charts import BarChart, bar_chart
from tests.support.journey import Stack
from tests.support.shaper import ServiceTimes, loop_lag

# Boxes log in first (before ``start_at``: a box's login is not part of its startup),
# then switch on over a ramp: each box at a uniformly drawn moment of the ``ramp_seconds``
# after ``start_at``, every village over the same ramp. Viewers switch on over minutes,
# not in one instant; a zap storm of every box at once is what ``bench/test_alerts.py``
# measures. Log in this many boxes at a time.
LOGIN_CONCURRENCY = 10
TIMEOUT = aiohttp.ClientTimeout(total=60)


@dataclass(frozen=True, slots=True)
class Session:
    """One box's session: its channel, and the front door's 302 of its first variant poll
    (nan: it played without the front door)."""

    qoe: Qoe
    channel: str = ""
    redirect_seconds: float = math.nan


@dataclass(frozen=True, slots=True)
class Played:
    """A village process's sessions, the boxes that failed (why), and its event loop's
    lag (:func:`tests.support.shaper.loop_lag`): a box process that is late inflates
    every time its boxes measure."""

    sessions: list[Session]
    failed: list[str]
    lag_seconds: list[float]

    def channel(self, channel: str) -> Played:
        """The sessions of one channel (failures and lag are the village's)."""
        return Played([s for s in self.sessions if s.channel == channel], self.failed,
                      self.lag_seconds)  # fmt: skip


async def _boxes(
    addresses: Sequence[str],
    source: Callable[[aiohttp.ClientSession, int], Awaitable[tuple[Source, str]]],
    seconds: float, start_at: float, ramp_seconds: float,
) -> Played:  # fmt: skip
    """Each box (one per address) plays ``seconds`` from its own source, switched on
    during the ``ramp_seconds`` after ``start_at`` (epoch seconds)."""

    async def one(i: int, address: str) -> Session:
        connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=0)
        async with aiohttp.ClientSession(
            connector=connector, timeout=TIMEOUT, trace_configs=[first_byte_trace()]
        ) as http:
            src, channel = await source(http, i)
            wait = max(0.0, start_at - time.time())
            await asyncio.sleep(wait + random.uniform(0, ramp_seconds))
            played = await AdaptivePlayer(src).play(seconds)
            redirects = src.stats.front_door_seconds if isinstance(src, BoxSource) else []
            return Session(played, channel, redirects[0] if redirects else math.nan)

    lag: list[float] = []
    probe = asyncio.create_task(loop_lag(lag))
    results = await asyncio.gather(
        *(one(i, a) for i, a in enumerate(addresses)), return_exceptions=True
    )
    probe.cancel()
    sessions = [r for r in results if isinstance(r, Session)]
    failed = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return Played(sessions, failed, lag)


def play_village(
    front_door: str, creds: list[tuple[str, str]], addresses: Sequence[str],
    channels: Sequence[str], seconds: float, start_at: float, ramp_seconds: float,
) -> Played:  # fmt: skip
    """Boxes log in at the front door and play, box ``i`` ``channels[i % len]`` (run
    inside the village)."""
    gate = asyncio.Semaphore(LOGIN_CONCURRENCY)

    async def source(http: aiohttp.ClientSession, i: int) -> tuple[Source, str]:
        box = SetTopBox(http, front_door, mac=creds[i][0], secret=creds[i][1])
        async with gate:
            await box.login()
        channel = channels[i % len(channels)]
        return BoxSource(box, channel), channel

    return asyncio.run(_boxes(addresses, source, seconds, start_at, ramp_seconds))


def play_direct(
    master_url: str, addresses: Sequence[str], seconds: float, start_at: float,
    ramp_seconds: float,
) -> Played:  # fmt: skip
    """Boxes play the HLS master at ``master_url`` (run inside the village)."""

    async def source(http: aiohttp.ClientSession, _: int) -> tuple[Source, str]:
        return DirectSource(http, master_url), ""

    return asyncio.run(_boxes(addresses, source, seconds, start_at, ramp_seconds))


async def edges_at(stack: Stack, host: str) -> None:
    """Register the stack's edges at the lab's service address, so boxes reach them over
    their links (the routing face's next refresh hands out the new address)."""
    store: EdgeStore = stack.controller.store
    for edge in await store.all():
        moved: Edge = replace(edge, host=host, version=edge.version + 1)
        await store.replace(moved, expected_version=edge.version)
    await stack.controller.refresh()


# Startup's phases as the table and the plots name them: the master (the front door's
# cold path: token, entitlement, lease, the master from an edge), the 302 of the first
# variant poll, the edge's playlist, waiting (retries, the window not listing the
# joining segment yet), the first segment's first byte and the rest of it.
PHASES = ("master", "302", "playlist", "waiting", "1st byte", "transfer")


def phase_seconds(session: Session) -> tuple[float, ...] | None:
    """A started session's startup split into :data:`PHASES` (the playlist phase less the
    302 when the session went through the front door)."""
    ph = session.qoe.phases
    if ph is None:
        return None
    redirect = 0.0 if math.isnan(session.redirect_seconds) else session.redirect_seconds
    redirect = min(redirect, ph.playlist)
    return (ph.master, redirect, ph.playlist - redirect, ph.waiting, ph.first_byte, ph.transfer)


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
    # Per phase of PHASES, over the started sessions: (median, p95, mean) seconds. The
    # means add up to the mean startup; the p95s are each phase's own.
    phases: tuple[tuple[float, float, float], ...] = ()
    lag_p95: float = math.nan  # the box process's event loop lag, p95 seconds

    def row(self) -> str:
        """The summary as one table row."""
        return (
            f"{self.name:<28} {self.sessions:>4} {self.failed:>4} {self.startup_p50:>7.2f} "
            f"{self.startup_p95:>7.2f} {self.rebuffer_ratio * 100:>8.2f}% "
            f"{self.avg_kbps:>8.0f} {self.switches:>6.2f} {self.stalls:>6.2f} "
            f"{self.skipped:>5} {self.errors:>5} {self.lag_p95 * 1000:>6.0f}"
        )

    def phase_row(self) -> str:
        """Startup's phases as one table row: median/p95 per phase, in seconds."""
        cells = " ".join(f"{p50:>5.2f}/{p95:<5.2f}" for p50, p95, _ in self.phases)
        return f"{self.name:<28} {cells}"


HEADER = (
    f"{'profile / channel':<28} {'ok':>4} {'fail':>4} {'start50':>7} {'start95':>7} "
    f"{'rebuffer':>9} {'avg kb/s':>8} {'switch':>6} {'stalls':>6} {'skip':>5} {'err':>5} "
    f"{'lag95':>6}"
)
PHASE_HEADER = f"{'startup phases p50/p95 (s)':<28} " + " ".join(f"{p:^11}" for p in PHASES)


def summarise(name: str, played: Played) -> Summary:
    """A group's sessions in figures (startup in seconds)."""
    sessions, failed = played.sessions, played.failed
    qs = [s.qoe for s in sessions]
    startups = sorted(q.startup_seconds for q in qs if not math.isnan(q.startup_seconds))
    watch = sum(q.watch_seconds for q in qs)
    n = max(1, len(qs))
    split = [ph for s in sessions if (ph := phase_seconds(s)) is not None]
    phases = []
    for i in range(len(PHASES) if split else 0):
        values = sorted(ph[i] for ph in split)
        phases.append((percentile(values, 50), percentile(values, 95), sum(values) / len(values)))
    return Summary(
        name=name,
        sessions=len(qs),
        failed=len(failed) + sum(1 for q in qs if math.isnan(q.startup_seconds)),
        startup_p50=percentile(startups, 50),
        startup_p95=percentile(startups, 95),
        rebuffer_ratio=sum(q.stall_seconds for q in qs) / watch if watch else 0.0,
        avg_kbps=sum(q.avg_bitrate_bps for q in qs) / n / 1000,
        switches=sum(q.switches for q in qs) / n,
        stalls=sum(q.stalls for q in qs) / n,
        skipped=sum(q.skipped for q in qs),
        errors=sum(len(q.errors) for q in qs),
        phases=tuple(phases),
        lag_p95=percentile(sorted(played.lag_seconds), 95),
    )


def svg_bars(title: str, unit: str, points: Sequence[tuple[str, float]]) -> str:
    """A standalone SVG bar chart of ``points`` (the console's geometry, values rounded)."""
    chart = bar_chart([(label, round(value)) for label, value in points], label_every=1)
    body = [
        f'<rect x="{bar.x}" y="{bar.y}" width="{bar.width}" height="{bar.height}" '
        f'fill="{_PHASE_COLOURS[0]}"><title>{bar.value}</title></rect>'
        for bar in chart.bars
    ]
    return _svg(chart, title, unit, body)


_PHASE_COLOURS = ("#3b6ea5", "#e08a2c", "#5aa05a", "#999999", "#c0504d", "#8064a2")


def svg_stacked(title: str, unit: str, points: Sequence[tuple[str, Sequence[float]]]) -> str:
    """A standalone SVG of stacked bars, one per ``(label, parts)``, the parts of
    :data:`PHASES` bottom up (the console's bar geometry for the totals)."""
    chart = bar_chart([(label, round(sum(parts))) for label, parts in points], label_every=1)
    legend = "".join(
        f'<rect x="{300 + i * 70}" y="5" width="10" height="10" fill="{colour}"/>'
        f'<text x="{314 + i * 70}" y="14">{escape(name)}</text>'
        for i, (name, colour) in enumerate(zip(PHASES, _PHASE_COLOURS, strict=True))
    )
    body = []
    for bar, (_, values) in zip(chart.bars, points, strict=True):
        total, y = sum(values) or 1.0, chart.baseline
        for name, value, colour in zip(PHASES, values, _PHASE_COLOURS, strict=True):
            height = bar.height * value / total
            y -= height
            body.append(
                f'<rect x="{bar.x}" y="{round(y, 1)}" width="{bar.width}" '
                f'height="{round(height, 1)}" fill="{colour}"><title>{escape(name)}: '
                f"{round(value)}</title></rect>"
            )
    return _svg(chart, title, unit, body, legend)


def _svg(chart: BarChart, title: str, unit: str, body: list[str], legend: str = "") -> str:
    """The chart's frame around ``body`` (its bars): title, axis, scale, and each bar's
    value above it and label below."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {chart.width} '
        f'{chart.height + 24}" font-family="sans-serif" font-size="11">',
        f'<text x="4" y="14" font-weight="bold">{escape(title)} ({escape(unit)})</text>',
        *([legend] if legend else []),
        '<g transform="translate(0,20)">',
        f'<line x1="40" y1="{chart.baseline}" x2="{chart.width}" y2="{chart.baseline}" '
        'stroke="#444"/>',
        f'<text x="36" y="18" text-anchor="end">{chart.top}</text>',
        f'<text x="36" y="{chart.baseline}" text-anchor="end">0</text>',
        *body,
    ]
    for bar in chart.bars:
        parts += [
            f'<text x="{round(bar.x + bar.width / 2, 1)}" y="{bar.y - 2}" text-anchor="middle">'
            f"{bar.value}</text>",
            f'<text x="{bar.x}" y="{chart.height - 4}">{escape(bar.label)}</text>',
        ]
    return "\n".join([*parts, "</g>", "</svg>"]) + "\n"


def service_rows(times: ServiceTimes, names: dict[int, str]) -> list[str]:
    """The platform's own time per service and kind of request (the proxy's
    :class:`~tests.support.shaper.ServiceTimes`, no link in it): count, p50, p95, max."""
    merged: dict[tuple[str, str], list[float]] = {}
    for (port, kind), values in times.seconds.items():
        merged.setdefault((names.get(port, str(port)), kind), []).extend(values)
    rows = [f"{'service / request':<28} {'count':>6} {'p50 s':>7} {'p95 s':>7} {'max s':>7}"]
    for (service, kind), values in sorted(merged.items()):
        values.sort()
        rows.append(
            f"{service + ' / ' + kind:<28} {len(values):>6} {percentile(values, 50):>7.3f} "
            f"{percentile(values, 95):>7.3f} {values[-1]:>7.3f}"
        )
    return rows


def write_plots(directory: Path, prefix: str, summaries: Sequence[Summary]) -> list[Path]:
    """Startup p95, rebuffer ratio and average bitrate per group, one SVG each, and the
    mean startup split into its phases."""
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
    path = directory / f"{prefix}-startup-phases.svg"
    stacked = [(s.name, [mean * 1000 for _, _, mean in s.phases]) for s in summaries if s.phases]
    path.write_text(svg_stacked("mean startup by phase", "ms", stacked))
    return [*written, path]
