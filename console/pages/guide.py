"""Guide: how many days of guide each channel has left (red under two), its gaps in the
coming week, and the latest XMLTV imports with their results."""

from __future__ import annotations

from typing import Any

from console.upstream import PAGE_SIZE
from console.view import Data, View, last_segment, when
from protos import epg_pb2

# Under this many days of guide ahead, a channel is red.
RED_UNDER_DAYS = 2


async def load_guide(view: View) -> Data:
    """Every readable channel's guide fill, and the recent imports."""
    channels: list[dict[str, Any]] = []
    imports: list[dict[str, Any]] = []
    async for page in view.every_page(
        view.services.epg.ListGuideStatus,
        lambda token: epg_pb2.ListGuideStatusRequest(page_size=PAGE_SIZE, page_token=token),
    ):
        for status in page.channels:
            days = round(status.hours_ahead / 24, 1)
            channels.append(
                {
                    "id": last_segment(status.channel),
                    "name": status.display_name,
                    "guide_end": when(status.guide_end),
                    "days_ahead": days,
                    "gaps": status.gaps,
                    "gap_hours": round(status.gap_seconds / 3600, 1),
                    "red": days < RED_UNDER_DAYS,
                }
            )
        imports = imports or [
            {
                "time": when(record.time),
                "principal": record.principal,
                "error": record.error,
                "written": record.result.programmes_written,
                "removed": record.result.programmes_removed,
                "problems": record.result.problems_total,
            }
            for record in page.recent_imports
        ]
    return {"channels": channels, "imports": imports}
