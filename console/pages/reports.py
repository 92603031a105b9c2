"""Reports: viewing figures (watch minutes, unique boxes, peak concurrency) per hour or day,
by channel, carrier or region, over the last days, of one channel or all; the same as CSV
for settlement, written by the reports service's own renderer
(:mod:`subscriber.reports.export`), so the console's download and ``headend reports
viewing --csv`` are one format. The service checks the channel (a broadcaster names one of
its own to see it by carrier or region)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from console.upstream import ConsoleError
from console.view import Data, View, when
from headend import errors
from protos import reports_pb2
from subscriber.reports.convert import row_from_pb
from subscriber.reports.export import csv_text

GRANULARITIES = {"hour": reports_pb2.GRANULARITY_HOUR, "day": reports_pb2.GRANULARITY_DAY}
DIMENSIONS = {
    "channel": reports_pb2.DIMENSION_CHANNEL,
    "carrier": reports_pb2.DIMENSION_CARRIER,
    "region": reports_pb2.DIMENSION_REGION,
}
MAX_DAYS = 92


class BadReportQuery(ConsoleError, errors.InvalidArgument):
    """Raised when the report form names an unknown granularity or grouping, or bad days."""


def _choice(view: View, name: str, choices: Mapping[str, int]) -> str:
    value = view.query.get(name) or next(iter(choices))
    if value not in choices:
        raise BadReportQuery(name, f"must be one of {', '.join(choices)}")
    return value


def _days(view: View) -> int:
    text = view.query.get("days") or "1"
    if not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        raise BadReportQuery("days", f"must be a whole number of days from 1 to {MAX_DAYS}")
    return int(text)


def report_request(view: View) -> tuple[Data, reports_pb2.QueryViewingRequest]:
    """The form's choices and the request they make (refused when the form is bad)."""
    granularity = _choice(view, "granularity", GRANULARITIES)
    group_by = _choice(view, "group_by", DIMENSIONS)
    days = _days(view)
    channel = view.query.get("channel", "").strip()
    end = view.now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    request = reports_pb2.QueryViewingRequest(
        granularity=GRANULARITIES[granularity], group_by=DIMENSIONS[group_by], channel_id=channel
    )
    request.start_time.FromDatetime(end - timedelta(days=days))
    request.end_time.FromDatetime(end)
    form = {"granularity": granularity, "group_by": group_by, "days": days, "channel": channel}
    return form, request


async def load_reports(view: View) -> Data:
    """The rows of the report the form asks for."""
    form, request = report_request(view)
    answer = await view.call(view.services.reports.QueryViewing, request)
    rows = [
        {
            "bucket": when(r.bucket_start),
            "key": r.key,
            "watch_minutes": round(r.watch_seconds / 60, 1),
            "unique_boxes": r.unique_boxes,
            "peak_concurrency": r.peak_concurrency,
        }
        for r in answer.rows
    ]
    return {"form": form, "rows": rows, "csv": True}


async def report_csv(view: View) -> str:
    """The same report as CSV, written by the reports service's own renderer."""
    _, request = report_request(view)
    answer = await view.call(view.services.reports.QueryViewing, request)
    return csv_text(row_from_pb(r) for r in answer.rows)
