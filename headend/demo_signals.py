"""The demo's signalling steps: an emergency drill for the box's county (step 8) and a
blacked-out ad break cued into its channel (step 9), each watched from the box.

Split from :mod:`headend.demo`, which runs them after the box's journey.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin

from cdn_ctl.sim.stb import PlayStats, SetTopBox
from epg.alerts.client import AlertClient
from epg.alerts.domain import Alert, Card, Severity
from epg.cues.client import CueClient
from epg.cues.domain import Cue, CueKind

Out = Callable[[str], None]

# Step 8: the drill comes into force this long after it is issued (the card channel's
# first segments are out by then), and the box plays for at most this long.
DRILL_LEAD_SECONDS = 20
# How long the box watches the card before the drill is cancelled.
DRILL_SHOW_SECONDS = 12
DRILL_PLAY_SECONDS = 120.0
# Step 9: the break starts this long after it is cued (the farm's reconciler queues it
# within seconds), and lasts this long.
BREAK_LEAD_SECONDS = 10
BREAK_SECONDS = 16
# A cut view names the feed's segments below this part of their URL (transcode.cuts).
FEED_DIR_PART = "/feed/"


@dataclass(frozen=True, slots=True)
class Drill:
    """Steps 8 and 9: where the alerts and cues are, an emergency agency's key, the
    operator's key (the cue), the channel the box watches, its county, and the origin
    (where the channel's own playlists show the cue)."""

    epg_target: str
    api_key: str
    channel: str
    region: str
    operator_key: str = ""
    origin: str = ""


async def emergency_drill(box: SetTopBox, drill: Drill, *, out: Out) -> None:
    """Step 8: a drill alert with a card for the box's county (no second key: a drill),
    in force :data:`DRILL_LEAD_SECONDS` after issue (the farm encodes its card
    meanwhile); the box playing ``drill.channel`` is switched to the card, then back to
    its channel once the drill is cancelled."""
    alert = Alert(
        id="",
        severity=Severity.MODERATE,
        headline="演习 洪水预警 Drill: flood warning",
        regions=(drill.region,),
        card=Card("演习 DRILL\n洪水预警 请向高处转移\nFlood warning: move to higher ground"),
        drill=True,
        start=datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=DRILL_LEAD_SECONDS),
    )
    async with AlertClient(drill.epg_target, drill.api_key) as alerts:
        issued = await alerts.issue(alert)
        out(f"8. emergency drill {issued.id} for county {drill.region}, in force at "
            f"{issued.in_force_from:%H:%M:%S} (card channel {issued.playout_channel_id});"
            f" `headend alert list` shows it")  # fmt: skip
        async with _playing(box, drill.channel) as (stats, playing):
            switched = await _until_played(stats, playing, lambda url: FEED_DIR_PART in url)
            if switched is not None and issued.in_force_from is not None:
                late = switched - issued.in_force_from.timestamp()
                out(f"    the box plays the card: its first card segment {late:.1f} s after "
                    "the drill came into force")  # fmt: skip
                await asyncio.sleep(DRILL_SHOW_SECONDS)
            await alerts.cancel(issued.id, reason="demo drill over")
            cancelled = datetime.now(UTC).timestamp()
            back = await _until_played(stats, playing, lambda url: FEED_DIR_PART not in url)
            if back is not None:
                out(f"    cancelled; the box is back on {drill.channel} "
                    f"{back - cancelled:.1f} s later")  # fmt: skip


@contextlib.asynccontextmanager
async def _playing(
    box: SetTopBox, channel: str
) -> AsyncIterator[tuple[PlayStats, asyncio.Task[PlayStats]]]:
    """The box playing ``channel`` (for :data:`DRILL_PLAY_SECONDS` at most) while the body
    watches its stats; then stopped, and its stream slot freed."""
    stats, stop = PlayStats(), asyncio.Event()
    playing = asyncio.create_task(
        box.play_live(channel, seconds=DRILL_PLAY_SECONDS, stop=stop, stats=stats)
    )
    try:
        yield stats, playing
    finally:
        stop.set()
        await playing
        await box.stop(stats.lease)


async def _until_played(
    stats: PlayStats, playing: asyncio.Task[PlayStats], wanted: Callable[[str], bool]
) -> float | None:
    """When (epoch seconds) the box first plays a segment ``wanted`` says yes to from now
    on; None if its playback ends first."""
    seen = len(stats.played)
    while not playing.done():
        for at, url in stats.played[seen:]:
            if wanted(url):
                return at
        seen = len(stats.played)
        played = asyncio.ensure_future(stats.progress.wait())
        await asyncio.wait((played, playing), return_when=asyncio.FIRST_COMPLETED)
        played.cancel()
        stats.progress.clear()
    return None


async def blackout_break(box: SetTopBox, drill: Drill, *, out: Out) -> None:
    """Step 9: an ad break cued into ``drill.channel`` :data:`BREAK_LEAD_SECONDS` ahead,
    blacked out in the box's county: the farm signals it as SCTE-35 in every rung's
    playlist, and the box sees the slate while it runs, then its channel again."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=BREAK_LEAD_SECONDS)
    cue = Cue(id="", channel_id=drill.channel, kind=CueKind.BREAK, start=start,
              duration_seconds=BREAK_SECONDS, blackout_regions=(drill.region,),
              description="demo: a match not licensed in this county")  # fmt: skip
    async with CueClient(drill.epg_target, drill.operator_key) as cues:
        cued = await cues.insert(cue)
    out(f"9. cue {cued.id}: a {BREAK_SECONDS} s break on {drill.channel} at {start:%H:%M:%S}, "
        f"blacked out in county {drill.region}; "
        f"`headend cue show {drill.channel} {cued.id}` shows it")  # fmt: skip
    async with _playing(box, drill.channel) as (stats, playing):
        switched = await _until_played(stats, playing, lambda url: FEED_DIR_PART in url)
        if switched is not None:
            lag = switched - start.timestamp()
            out(f"    the box plays the slate: its first slate segment {lag:+.1f} s from the "
                "break's start")  # fmt: skip
        back = await _until_played(stats, playing, lambda url: FEED_DIR_PART not in url)
        if back is not None:
            out(f"    the box is back on {drill.channel} {back - cued.end.timestamp():.1f} s "
                "after the break ended")  # fmt: skip
    for line in await _signalled(box, drill, f"splice-{cued.event:08X}"):
        out(f"    {line[:150]}")


async def _signalled(box: SetTopBox, drill: Drill, key: str) -> list[str]:
    """The SCTE-35 date ranges of the break in the channel's own first rung (origin)."""
    master_url = f"{drill.origin}/live/{drill.channel}/master.m3u8"
    async with box.http.get(master_url) as resp:
        master = await resp.text()
    variant = next(line for line in master.splitlines() if line and not line.startswith("#"))
    async with box.http.get(urljoin(master_url, variant)) as resp:
        text = await resp.text()
    return [
        line for line in text.splitlines() if line.startswith("#EXT-X-DATERANGE") and key in line
    ]
