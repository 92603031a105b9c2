"""Bulk provisioning over the client-streaming RPC: per-row results, idempotent re-runs,
interrupted imports and size bounds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from headend.rpc import bearer, error_details
from protos import subscriber_pb2 as pb
from subscriber.store.codec import mac_key, parse_holder, sub_key, subs_key
from tests.support.subscriber import ALICE_MAC, Api

ACME = "carrier:acme"


def rows(n: int, *, first: int = 0, name: str = "Viewer") -> list[pb.ImportRow]:
    """n valid rows, each with a box and two entitlements; row numbers are CSV-like (from 2)."""
    return [
        pb.ImportRow(
            row=i + 2,
            subscriber_id=f"u{i:05d}",
            display_name=f"{name} {i}",
            region_code="320102",
            mac=f"02:00:00:00:{i // 256:02x}:{i % 256:02x}",
            serial=f"SN{i}",
            model="B860",
            package_ids=["basic", "sports"],
        )
        for i in range(first, first + n)
    ]


async def send(
    api: Api, chunks: Sequence[Sequence[pb.ImportRow]], carrier: str = "acme", as_: str = ACME
) -> pb.ImportSummary:
    async def gen() -> AsyncIterator[pb.ImportSubscribersRequest]:
        for chunk in chunks:
            yield pb.ImportSubscribersRequest(parent=f"carriers/{carrier}", rows=list(chunk))

    return await api.stub.ImportSubscribers(gen(), metadata=bearer(await api.tokens(as_)))


def split(items: list[pb.ImportRow], size: int) -> list[list[pb.ImportRow]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def test_import_creates_subscribers_boxes_and_entitlements(world: Api) -> None:
    summary = await send(world, split(rows(120), 40))
    assert (summary.rows, summary.created, summary.failed) == (120, 120, 0)
    page = await world.call(
        "ListSubscribers", pb.ListSubscribersRequest(parent="carriers/acme", page_size=1), as_=ACME
    )
    assert page.total_size == 121  # plus alice
    sub = await world.call(
        "GetSubscriber",
        pb.GetSubscriberRequest(name="carriers/acme/subscribers/u00007"),
        as_=ACME,
    )
    assert (sub.display_name, sub.region_code, sub.version, sub.max_streams) == (
        "Viewer 7",
        "320102",
        1,
        2,
    )
    ents = await world.call(
        "ListEntitlements",
        pb.ListEntitlementsRequest(parent="carriers/acme/subscribers/u00007"),
        as_=ACME,
    )
    assert [e.name.rsplit("/", 1)[1] for e in ents.entitlements] == ["basic", "sports"]
    decision = await world.call(
        "Authorize", pb.AuthorizeRequest(mac="02-00-00-00-00-07", channel_id="cctv5")
    )
    assert (decision.allowed, decision.subscriber_id) == (True, "u00007")
    audit = await world.call(
        "ListAudit", pb.ListAuditRequest(parent="carriers/acme", page_size=500), as_=ACME
    )
    imported = [e for e in audit.entries if e.rpc == "ImportSubscribers"]
    assert len(imported) == 120
    assert imported[0].before_json == ""
    assert json.loads(imported[0].after_json)["r"] == "320102"


async def test_rerun_changes_nothing_and_updates_only_what_differs(world: Api) -> None:
    batch = rows(60)
    await send(world, split(batch, 25))
    before = await world.snapshot()
    again = await send(world, split(batch, 25))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 60)
    assert await world.snapshot() == before
    batch[5].display_name = "Renamed"
    changed = await send(world, [batch])
    assert (changed.updated, changed.unchanged) == (1, 59)
    sub = await world.call(
        "GetSubscriber",
        pb.GetSubscriberRequest(name="carriers/acme/subscribers/u00005"),
        as_=ACME,
    )
    assert (sub.display_name, sub.version) == ("Renamed", 2)


async def test_each_bad_row_is_reported_and_changes_nothing(world: Api) -> None:
    good = rows(4)
    bad = rows(6, first=10)
    bad[0].region_code = "999999"
    bad[1].mac = "zz:zz"
    bad[2].package_ids.append("premium")
    bad[3].mac = "AA:BB:CC:00:00:01"  # alice's box at acme: already bound
    bad[4].max_streams = 40
    bad[5].subscriber_id = "alice"  # exists; terminated below, so it may not change
    await world.call(
        "SetSubscriberStatus",
        pb.SetSubscriberStatusRequest(
            name="carriers/acme/subscribers/alice", status=pb.SUBSCRIBER_STATUS_TERMINATED
        ),
        as_=ACME,
    )
    bad[5].mac = bad[5].serial = bad[5].model = ""
    summary = await send(world, [good[:2] + bad[:3], bad[3:] + good[2:]])
    assert (summary.rows, summary.created, summary.failed) == (10, 4, 6)
    found = [(e.row, e.field) for e in summary.errors]
    assert found == [
        (12, "region_code"),
        (13, "mac"),
        (14, "package_ids"),
        (15, "mac"),
        (16, "max_streams"),
        (17, "status"),
    ]
    assert "already bound" in summary.errors[3].error
    for i in range(10, 15):
        assert not await world.redis.exists(sub_key("acme", f"u{i:05d}"))
    alice = await world.call(
        "GetSubscriber", pb.GetSubscriberRequest(name="carriers/acme/subscribers/alice"), as_=ACME
    )
    assert alice.display_name == "Alice"
    assert parse_holder(await world.redis.get(mac_key(ALICE_MAC))) == ("acme", "alice")


async def test_other_carriers_mac_is_refused_without_naming_it(world: Api) -> None:
    await send(world, [rows(1)], carrier="beta", as_="carrier:beta")
    summary = await send(world, [rows(1)])
    assert summary.failed == 1
    assert summary.errors[0].field == "mac"
    assert "beta" not in summary.errors[0].error


async def test_interrupted_import_rerun_makes_no_duplicates(world: Api) -> None:
    batch = rows(200)
    chunks = split(batch, 50)

    await send(world, [batch[:30]])  # an earlier, acknowledged partial run
    sent, never = asyncio.Event(), asyncio.Event()

    async def stalls() -> AsyncIterator[pb.ImportSubscribersRequest]:
        for chunk in chunks[:2]:
            yield pb.ImportSubscribersRequest(parent="carriers/acme", rows=chunk)
        sent.set()
        await never.wait()

    call = world.stub.ImportSubscribers(stalls(), metadata=bearer(await world.tokens(ACME)))
    await sent.wait()
    call.cancel()  # the client goes away mid-import
    with pytest.raises(asyncio.CancelledError):
        await call
    applied = await world.redis.zcard(subs_key("acme")) - 1
    assert 30 <= applied <= 100
    summary = await send(world, chunks)
    assert summary.failed == 0
    # The server lets its batch in flight land after the client left, possibly after
    # the count above: at least those rows are unchanged, and none is made twice.
    assert summary.unchanged >= applied
    assert summary.created == 200 - summary.unchanged
    assert await world.redis.zcard(subs_key("acme")) == 201
    macs = [k async for k in world.redis.scan_iter(match=mac_key("02:*"))]
    assert len(macs) == 200
    assert {await world.redis.pttl(k) for k in macs} == {-1}  # every claim was kept


async def test_oversize_chunk_is_refused_whole(world: Api, settings) -> None:
    before = await world.snapshot()
    huge = [
        pb.ImportRow(row=i, subscriber_id=f"h{i}", display_name="h", region_code="110101")
        for i in range(settings.import_chunk_rows_max + 1)
    ]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await send(world, [huge])
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await world.snapshot() == before


async def test_chunks_must_name_one_carrier(world: Api) -> None:
    async def gen() -> AsyncIterator[pb.ImportSubscribersRequest]:
        yield pb.ImportSubscribersRequest(parent="carriers/acme", rows=rows(1))
        yield pb.ImportSubscribersRequest(parent="carriers/beta", rows=rows(1, first=1))

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await world.stub.ImportSubscribers(gen(), metadata=bearer(await world.tokens("admin")))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not await world.redis.exists(sub_key("beta", "u00001"))


def _odd(row: pb.ImportRow, case: str) -> None:
    if case == "empty-id":
        row.subscriber_id = ""
    elif case == "empty-name":
        row.display_name = "   "
    elif case == "bad-region":
        row.region_code = "44030x"
    elif case == "bad-mac":
        row.mac = "ff:ff:ff:ff:ff:ff"
    elif case == "absurd-streams":
        row.max_streams = 2**32 - 1
    elif case == "time-beyond-9999":
        row.service_end.seconds = 10**12
    elif case == "negative-nanos":
        row.entitled_until.seconds, row.entitled_until.nanos = 1, -5
    elif case == "unknown-status":
        row.status = 99  # type: ignore[assignment]
    elif case == "huge-name":
        row.display_name = "x" * 100_000


ODD = {
    "empty-id": "subscriber_id",
    "empty-name": "display_name",
    "bad-region": "region_code",
    "bad-mac": "mac",
    "absurd-streams": "max_streams",
    "time-beyond-9999": "service_end",
    "negative-nanos": "entitled_until",
    "unknown-status": "status",
    "huge-name": "display_name",
}


async def test_odd_cells_are_per_row_errors_never_a_failed_stream(world: Api) -> None:
    batch = rows(len(ODD) + 2)
    for row, case in zip(batch[1:], ODD, strict=False):
        _odd(row, case)
    before = await world.snapshot()
    summary = await send(world, [batch])
    assert (summary.rows, summary.created, summary.failed) == (len(ODD) + 2, 2, len(ODD))
    assert [(e.row, e.field) for e in summary.errors] == [
        (row.row, field) for row, field in zip(batch[1:], ODD.values(), strict=False)
    ]
    after = await world.snapshot()
    added = {k for k in after if k not in before and k.startswith(sub_key("acme", "").encode())}
    assert added == {sub_key("acme", f"u{i:05d}").encode() for i in (0, len(ODD) + 1)}


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        pytest.param(
            "CreateSubscriber",
            pb.CreateSubscriberRequest(
                parent="carriers/acme",
                subscriber_id="eve",
                subscriber=pb.Subscriber(
                    display_name="Eve", region_code="110101", service_end=Timestamp(seconds=10**12)
                ),
            ),
            "service_end",
            id="create-service-end",
        ),
        pytest.param(
            "Authorize",
            pb.AuthorizeRequest(mac=ALICE_MAC, channel_id="cctv1", at=Timestamp(seconds=-(10**12))),
            "at",
            id="authorize-at",
        ),
        pytest.param(
            "Entitle",
            pb.EntitleRequest(
                name="carriers/acme/subscribers/alice",
                package_id="sports",
                valid_until=Timestamp(seconds=1, nanos=-1),
            ),
            "valid_until",
            id="entitle-until",
        ),
    ],
)
async def test_out_of_range_times_are_invalid_argument_not_unknown(
    world: Api, method: str, request_: Any, field: str
) -> None:
    before = await world.snapshot()
    err = await world.fails(method, request_)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error_details(err).fields
    assert await world.snapshot() == before
