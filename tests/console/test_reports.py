"""The reports page, its JSON and its CSV download: the viewing service's own figures for
the operator's key (a broadcaster's: its own channels'), in the reports service's CSV
format."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from headend.rpc import bearer, client_channel
from headend.seed import World
from protos import reports_pb2, reports_pb2_grpc, subscriber_pb2, subscriber_pb2_grpc
from subscriber.reports.export import COLUMNS
from tests.support.console import ConsoleFace
from tests.support.tokens import Tokens
from tests.support.world import CARRIER, LIVE


async def _watch(target: str, key: str, mac: str) -> None:
    async with client_channel(target) as chan:
        stub = subscriber_pb2_grpc.SubscriberServiceStub(chan)
        lease = await stub.StartSession(
            subscriber_pb2.StartSessionRequest(mac=mac, channel_id=LIVE), metadata=bearer(key)
        )
        await stub.EndSession(
            subscriber_pb2.EndSessionRequest(mac=mac, lease_id=lease.lease_id),
            metadata=bearer(key),
        )


async def _direct(target: str, key: str, group_by: int) -> list[tuple[str, str, int]]:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    request = reports_pb2.QueryViewingRequest(
        granularity=reports_pb2.GRANULARITY_HOUR,
        group_by=group_by,  # type: ignore[arg-type]
    )
    request.start_time.FromDatetime(end - timedelta(days=1))
    request.end_time.FromDatetime(end)
    async with client_channel(target) as chan:
        answer = await reports_pb2_grpc.ViewingReportServiceStub(chan).QueryViewing(
            request, metadata=bearer(key)
        )
    return [
        (r.bucket_start.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds"), r.key,
         r.unique_boxes)
        for r in answer.rows
    ]  # fmt: skip


async def test_reports_show_the_services_figures_and_download_as_csv(
    console: ConsoleFace, tokens: Tokens, world: World, targets: dict[str, str]
) -> None:
    await _watch(targets["SUBSCRIBER_TARGET"], await tokens("playback"), world.boxes["c1"].mac)
    for principal in ("admin", f"carrier:{CARRIER}"):
        key = await tokens(principal)
        async with console.operator() as op:
            await op.login(key)
            for group, dimension in (("channel", 1), ("carrier", 2)):
                query = f"days=1&granularity=hour&group_by={group}"
                answer = await op.get(f"/api/reports.json?{query}")
                assert answer.status == 200, (principal, group, answer.text)
                data = answer.json
                shown = [(r["bucket"], r["key"], r["unique_boxes"]) for r in data["rows"]]
                assert shown == await _direct(targets["SUBSCRIBER_TARGET"], key, dimension)
                # The one lease watched: one box on the channel, of the carrier.
                assert [(k, n) for _, k, n in shown] == [({"channel": LIVE}.get(group, CARRIER), 1)]
                page = await op.get(f"/reports?{query}")
                assert page.status == 200
                download = await op.get(f"/reports.csv?{query}")
                assert download.headers["Content-Type"].startswith("text/csv")
                assert "attachment" in download.headers["Content-Disposition"]
                table = list(csv.reader(io.StringIO(download.text)))
                assert tuple(table[0]) == COLUMNS
                assert [(r[1], int(r[3])) for r in table[1:]] == [(k, n) for _, k, n in shown]


async def test_a_broadcaster_reads_its_own_channels_figures(
    console: ConsoleFace, tokens: Tokens, world: World, targets: dict[str, str]
) -> None:
    await _watch(targets["SUBSCRIBER_TARGET"], await tokens("playback"), world.boxes["c1"].mac)
    query = "days=1&granularity=hour"
    async with console.operator() as op:
        await op.login(await tokens("broadcaster:demo"))  # the owner of the world's channels
        rows = (await op.get(f"/api/reports.json?{query}&group_by=channel")).json["rows"]
        assert [(r["key"], r["unique_boxes"]) for r in rows] == [(LIVE, 1)]
        by_carrier = await op.get(f"/api/reports.json?{query}&group_by=carrier&channel={LIVE}")
        assert [(r["key"], r["unique_boxes"]) for r in by_carrier.json["rows"]] == [(CARRIER, 1)]
        download = await op.get(f"/reports.csv?{query}&group_by=carrier&channel={LIVE}")
        assert [r[1] for r in csv.reader(io.StringIO(download.text))][1:] == [CARRIER]
        # By carrier, the figures of one of its channels: the form says which.
        unnamed = await op.get(f"/api/reports.json?{query}&group_by=carrier")
        assert (unnamed.status, unnamed.json["status"]) == (400, 400)
        assert "channel_id" in unnamed.json["detail"]
    async with console.operator() as op:
        await op.login(await tokens("broadcaster:other"))
        rows = (await op.get(f"/api/reports.json?{query}&group_by=channel")).json["rows"]
        assert rows == []
        assert (await op.get(f"/api/reports.json?{query}&channel={LIVE}")).status == 403
