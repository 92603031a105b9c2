"""Channels: the mosaic (state, segment age, bitrate per rung, node, viewers now, a
thumbnail) and one channel's page (source history, 24 hours of viewers).

The rows are the channels the operator may read in the guide (EPG ``ListChannels``: a
broadcaster its own) joined with transcode's live status (``ListChannels``: every
channel's for the admin, a broadcaster its own channels', with their thumbnails) and the
viewers now (``CountViewers``, scoped by the reports service). A channel is red on slate,
or when its newest segment is older than three target durations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from console.charts import bar_chart
from console.upstream import PAGE_SIZE, ServiceRefused, Services
from console.view import Data, View, last_segment, when
from protos import epg_pb2, reports_pb2, transcode_pb2

# How stale a segment may get, in target durations, before the channel is red.
STALE_TARGETS = 3
THUMBNAIL_MAX_AGE_SECONDS = 5
# A channel with no picture yet (404), or a transcode service without thumbnails (501).
NO_PICTURE = (404, 501)
# What GetChannel answers for a channel that is not live.
NOT_LIVE = 404
PLACEHOLDER = (Path(__file__).parents[1] / "static" / "nothumb.svg").read_bytes()
_STATES = {
    transcode_pb2.CHANNEL_STATE_STOPPED: "stopped",
    transcode_pb2.CHANNEL_STATE_STARTING: "starting",
    transcode_pb2.CHANNEL_STATE_LIVE: "live",
    transcode_pb2.CHANNEL_STATE_SLATE: "slate",
    transcode_pb2.CHANNEL_STATE_DEGRADED: "degraded",
    transcode_pb2.CHANNEL_STATE_RECOVERING: "recovering",
}


def _title(channel: epg_pb2.Channel, lang: str) -> str:
    names = {n.lang: n.text for n in channel.names}
    return names.get(lang) or next(iter(names.values()), "") or last_segment(channel.name)


def _state(status: transcode_pb2.ChannelStatus) -> str:
    state = _STATES.get(status.state, "unknown")
    return "backup" if state == "live" and status.source_index > 0 else state


def live_row(status: transcode_pb2.ChannelStatus, view: View) -> dict[str, Any]:
    """One channel's live columns, and whether it is red."""
    state = _state(status)
    age = None
    last = status.last_segment_time
    if last.seconds:
        age = round((view.now - last.ToDatetime(tzinfo=view.now.tzinfo)).total_seconds(), 1)
    target = status.target_duration_seconds
    stale = age is not None and target > 0 and age > STALE_TARGETS * target
    return {
        "state": state,
        "source_index": status.source_index,
        "source": status.source_url,
        # Changes with each segment: the thumbnail's URL carries it, so a re-rendered page
        # fetches the newest picture (a browser reuses an image URL for a page's lifetime).
        "media_sequence": status.media_sequence,
        "reason": status.reason,
        "node": status.node,
        "segment_age_seconds": age,
        "target_duration_seconds": target,
        "rungs": [{"name": r.name, "kbps": round(r.bandwidth / 1000)} for r in status.rungs],
        "red": state == "slate" or stale,
    }


def answered(view: View, section: str) -> bool:
    """True when the services gave the page ``section``."""
    return section not in view.missing and section not in view.hidden


async def _viewers(view: View, channel_id: str = "") -> dict[str, int]:
    answer = await view.optional(
        "viewers",
        view.services.reports.CountViewers,
        reports_pb2.CountViewersRequest(channel_id=channel_id),
    )
    counts: dict[str, int] = {}
    for row in answer.viewers if answer is not None else ():
        counts[row.channel_id] = counts.get(row.channel_id, 0) + row.viewers
    return counts


async def _guide_channels(view: View) -> list[epg_pb2.Channel]:
    found: list[epg_pb2.Channel] = []
    async for page in view.every_page(
        view.services.epg.ListChannels,
        lambda token: epg_pb2.ListChannelsRequest(page_size=PAGE_SIZE, page_token=token),
    ):
        found.extend(page.channels)
    return found


async def _live(view: View) -> list[transcode_pb2.ChannelStatus]:
    found: list[transcode_pb2.ChannelStatus] = []
    try:
        async for page in view.every_page(
            view.services.transcode.ListChannels,
            lambda token: transcode_pb2.ListChannelsRequest(page_size=PAGE_SIZE, page_token=token),
        ):
            found.extend(page.channels)
    except ServiceRefused as err:
        view.refused("live", err)
    return found


async def _status(view: View, name: str) -> transcode_pb2.ChannelStatus | None:
    """The channel's live status; None when it is not live or may not be read."""
    try:
        return await view.call(
            view.services.transcode.GetChannel, transcode_pb2.GetChannelRequest(name=name)
        )
    except ServiceRefused as err:
        if err.problem.status != NOT_LIVE:
            view.refused("live", err)
        return None


def _rows(
    guide: Iterable[epg_pb2.Channel], live: Iterable[transcode_pb2.ChannelStatus], view: View
) -> dict[str, dict[str, Any]]:
    # Not in the live list the operator may read: stopped (or, if it may not, unknown).
    state = "stopped" if answered(view, "live") else "unknown"
    rows = {
        last_segment(c.name): _blank(last_segment(c.name), _title(c, view.lang), state)
        for c in guide
    }
    for status in live:
        cid = last_segment(status.channel.name)
        rows.setdefault(cid, _blank(cid, cid, state)).update(live_row(status, view))
    return rows


def _blank(cid: str, name: str, state: str) -> dict[str, Any]:
    """A channel without live columns: not live, or the operator may not read them."""
    return {
        "id": cid, "name": name, "state": state, "source_index": 0, "source": "",
        "media_sequence": 0,
        "reason": "", "node": "", "segment_age_seconds": None, "target_duration_seconds": 0,
        "rungs": [], "red": False,
    }  # fmt: skip


async def load_channels(view: View) -> Data:
    """The mosaic."""
    guide, live, viewers = await asyncio.gather(_guide_channels(view), _live(view), _viewers(view))
    rows = _rows(guide, live, view)
    for cid, row in rows.items():
        row["viewers"] = viewers.get(cid, 0) if answered(view, "viewers") else None
    return {"channels": list(rows.values())}


async def load_channel(view: View) -> Data:
    """One channel: its live status, source history and the last 24 hours' viewers."""
    cid = view.match["channel"]
    name = f"channels/{cid}"
    end = view.now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    request = reports_pb2.QueryViewingRequest(
        granularity=reports_pb2.GRANULARITY_HOUR,
        group_by=reports_pb2.DIMENSION_CHANNEL,
        channel_id=cid,
    )
    request.start_time.FromDatetime(end - timedelta(hours=24))
    request.end_time.FromDatetime(end)
    guide, status, viewers, viewing = await asyncio.gather(
        view.call(view.services.epg.GetChannel, epg_pb2.GetChannelRequest(name=name)),
        _status(view, name),
        _viewers(view, cid),
        view.optional("viewing", view.services.reports.QueryViewing, request),
    )
    row = _rows([guide], [status] if status is not None else [], view)[cid]
    history = [
        {
            "time": when(s.switch_time),
            "from": s.from_index,
            "to": s.to_index,
            "reason": s.reason,
            "detail": s.detail,
        }
        for s in reversed(status.source_history if status is not None else [])
    ]
    row["viewers"] = viewers.get(cid, 0) if answered(view, "viewers") else None
    peaks = {when(r.bucket_start): r.peak_concurrency for r in viewing.rows} if viewing else {}
    hours = [end - timedelta(hours=24 - i) for i in range(24)]
    points = [(f"{h:%H}:00", int(peaks.get(h.isoformat(timespec="seconds"), 0))) for h in hours]
    chart = bar_chart(points).to_json() if viewing is not None else None
    return {"channel": row, "history": history, "chart": chart}


async def thumbnail(services: Services, api_key: str, channel_id: str) -> web.Response:
    """The channel's latest thumbnail as a JPEG, cached briefly by the browser; a grey
    placeholder while it has none (no segment yet, or no thumbnails on this platform)."""
    cache = {"Cache-Control": f"private, max-age={THUMBNAIL_MAX_AGE_SECONDS}"}
    try:
        answer = await services.call(
            services.transcode.GetChannelThumbnail,
            transcode_pb2.GetChannelThumbnailRequest(name=f"channels/{channel_id}"),
            api_key,
        )
    except ServiceRefused as err:
        if err.problem.status not in NO_PICTURE:
            raise
        return web.Response(body=PLACEHOLDER, content_type="image/svg+xml", headers=cache)
    return web.Response(body=answer.jpeg, content_type="image/jpeg", headers=cache)
