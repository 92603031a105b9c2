"""``CountSubscribers`` and ``ListProvisioningErrors`` through a real server and real
Redis: the counts always equal a scan of the subscribers, whatever changed them; every
refused provisioning request and failed import row is listed for its carrier only."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from headend.rpc import bearer, error_details
from headend.text import forbidden_char
from protos import subscriber_pb2 as pb
from subscriber.convert import SUB_STATUS
from subscriber.domain.helpdesk import PROVISIONING_ERRORS_KEPT
from subscriber.store.codec import CARRIERS, counts_key, errors_key, sub_key, subs_key
from tests.support.subscriber import ALICE_MAC, Api, device_name

ACME, BETA = "carrier:acme", "carrier:beta"
Status: TypeAlias = pb.SubscriberStatus
ACTIVE, SUSPENDED, TERMINATED = (
    pb.SUBSCRIBER_STATUS_ACTIVE,
    pb.SUBSCRIBER_STATUS_SUSPENDED,
    pb.SUBSCRIBER_STATUS_TERMINATED,
)

# --- counts ------------------------------------------------------------------------------------


async def scanned(api: Api) -> Counter[tuple[str, str]]:
    """Subscribers by (carrier, status), counted the slow way: every subscriber read."""
    found: Counter[tuple[str, str]] = Counter()
    for carrier in sorted(c.decode() for c in await api.redis.smembers(CARRIERS)):
        for sid in await api.redis.zrange(subs_key(carrier), 0, -1):
            status = await api.redis.hget(sub_key(carrier, sid.decode()), "s")
            found[(carrier, status.decode())] += 1
    return found


async def counted(api: Api, as_: str = "admin") -> Counter[tuple[str, str]]:
    reply = await api.call("CountSubscribers", pb.CountSubscribersRequest(), as_)
    return Counter(
        {
            (c.carrier.removeprefix("carriers/"), SUB_STATUS[c.status]): c.count
            for c in reply.counts
            if c.count
        }
    )


async def create(api: Api, sid: str) -> None:
    await api.call(
        "CreateSubscriber",
        pb.CreateSubscriberRequest(
            parent="carriers/acme",
            subscriber_id=sid,
            subscriber=pb.Subscriber(display_name=sid, region_code="110101"),
        ),
        ACME,
    )


async def set_status(api: Api, sid: str, status: Status) -> None:
    await api.call(
        "SetSubscriberStatus",
        pb.SetSubscriberStatusRequest(name=f"carriers/acme/subscribers/{sid}", status=status),
        ACME,
    )


def rows(*spec: tuple[str, Status]) -> list[pb.ImportRow]:
    return [
        pb.ImportRow(
            row=n + 2, subscriber_id=sid, display_name=sid, region_code="440305", status=status
        )
        for n, (sid, status) in enumerate(spec)
    ]


async def run_import(
    api: Api, batch: list[pb.ImportRow], as_: str = ACME, carrier: str = "acme"
) -> pb.ImportSummary:
    async def chunks() -> AsyncIterator[pb.ImportSubscribersRequest]:
        yield pb.ImportSubscribersRequest(parent=f"carriers/{carrier}", rows=batch)

    summary: pb.ImportSummary = await api.stub.ImportSubscribers(
        chunks(), metadata=bearer(await api.tokens(as_))
    )
    return summary


async def test_counts_equal_a_scan_after_every_kind_of_change(world: Api) -> None:
    async def check() -> None:
        assert await counted(world) == await scanned(world)

    await check()
    for sid in ("carol", "dave", "erin"):
        await create(world, sid)
    err = await world.fails(
        "CreateSubscriber",
        pb.CreateSubscriberRequest(
            parent="carriers/acme",
            subscriber_id="carol",
            subscriber=pb.Subscriber(display_name="again", region_code="110101"),
        ),
        ACME,
    )
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    await check()
    await set_status(world, "carol", SUSPENDED)
    await set_status(world, "dave", TERMINATED)
    await set_status(world, "carol", ACTIVE)
    await set_status(world, "erin", SUSPENDED)
    await set_status(world, "erin", SUSPENDED)  # no change
    await check()
    assert (await counted(world))[("acme", "terminated")] == 1
    # Not a status change: the counts stay.
    sub = await world.call(
        "GetSubscriber", pb.GetSubscriberRequest(name="carriers/acme/subscribers/carol")
    )
    await world.call(
        "UpdateSubscriber",
        pb.UpdateSubscriberRequest(
            subscriber=pb.Subscriber(name=sub.name, display_name="Carol B"),
            update_mask=FieldMask(paths=["display_name"]),
            expected_version=sub.version,
        ),
        ACME,
    )
    await check()
    # Imports: new rows in each status, an existing subscriber's status changed, a terminated
    # one refused.
    batch = rows(
        ("f1", ACTIVE), ("f2", SUSPENDED), ("f3", TERMINATED), ("alice", SUSPENDED),
        ("dave", ACTIVE),
    )  # fmt: skip
    summary = await run_import(world, batch)
    assert (summary.created, summary.updated, summary.failed) == (3, 1, 1)
    await check()
    # The same file again changes nothing; then statuses change by import.
    again = await run_import(world, batch)
    assert again.unchanged == 4
    await check()
    summary = await run_import(world, rows(("f1", TERMINATED), ("f2", ACTIVE), ("alice", ACTIVE)))
    assert summary.updated == 3
    await check()
    # Beta's own subscribers, in beta's own slot.
    await run_import(world, rows(("b1", SUSPENDED)), as_=BETA, carrier="beta")
    await check()
    assert await counted(world) == Counter(
        {
            ("acme", "active"): 3, ("acme", "suspended"): 1, ("acme", "terminated"): 3,
            ("beta", "active"): 1, ("beta", "suspended"): 1,
        }
    )  # fmt: skip


async def test_counts_stored_before_their_upkeep_are_counted_once(world: Api) -> None:
    for sid in ("carol", "dave"):
        await create(world, sid)
    await set_status(world, "dave", SUSPENDED)
    # As a carrier stored before the counts were kept: none, then writes since the upgrade.
    await world.redis.delete(counts_key("acme"))
    await create(world, "erin")
    await set_status(world, "carol", TERMINATED)
    assert await counted(world) == await scanned(world)
    assert await world.redis.hget(counts_key("acme"), "ready") == b"1"
    # Kept by every write from then on.
    await set_status(world, "erin", SUSPENDED)
    await run_import(world, rows(("f1", ACTIVE), ("dave", ACTIVE)))
    assert await counted(world) == await scanned(world)


async def test_a_carrier_counts_its_own_subscribers_only(world: Api) -> None:
    reply = await world.call("CountSubscribers", pb.CountSubscribersRequest(), BETA)
    assert {(c.carrier, c.status, c.count) for c in reply.counts} == {
        ("carriers/beta", ACTIVE, 1),
        ("carriers/beta", SUSPENDED, 0),
        ("carriers/beta", TERMINATED, 0),
    }
    everyone = await world.call("CountSubscribers", pb.CountSubscribersRequest())
    assert {c.carrier for c in everyone.counts} == {"carriers/acme", "carriers/beta"}
    # A carrier key whose carrier does not exist counts nothing.
    nobody = await world.call("CountSubscribers", pb.CountSubscribersRequest(), "carrier:nobody")
    assert not nobody.counts
    for as_ in ("playback", "broadcaster:cctv"):
        err = await world.fails("CountSubscribers", pb.CountSubscribersRequest(), as_)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, as_


# --- provisioning errors -----------------------------------------------------------------------


async def errors_of(api: Api, parent: str = "carriers/acme", as_: str = ACME, size: int = 0) -> Any:
    reply = await api.call(
        "ListProvisioningErrors",
        pb.ListProvisioningErrorsRequest(parent=parent, page_size=size),
        as_,
    )
    return reply.errors


async def test_refused_requests_are_listed_newest_first_with_reason(world: Api) -> None:
    refusals: list[tuple[str, Any, str]] = [
        (
            "CreateSubscriber",
            pb.CreateSubscriberRequest(
                parent="carriers/acme",
                subscriber_id="carol",
                subscriber=pb.Subscriber(display_name="Carol", region_code="12"),
            ),
            "subscriber/carol",
        ),
        (
            "CreateSubscriber",
            pb.CreateSubscriberRequest(
                parent="carriers/acme",
                subscriber_id="alice",
                subscriber=pb.Subscriber(display_name="Alice", region_code="110101"),
            ),
            "subscriber/alice",
        ),
        (
            "SetSubscriberStatus",
            pb.SetSubscriberStatusRequest(name="carriers/acme/subscribers/ghost", status=SUSPENDED),
            "subscriber/ghost",
        ),
        (
            "UpdateSubscriber",
            pb.UpdateSubscriberRequest(
                subscriber=pb.Subscriber(name="carriers/acme/subscribers/alice"),
                update_mask=FieldMask(paths=["nonsense"]),
                expected_version=1,
            ),
            "subscriber/alice",
        ),
        (
            "BlockDevice",
            pb.BlockDeviceRequest(name=device_name("acme", "aa:bb:cc:0f:0f:0f"), blocked=True),
            "device/aa:bb:cc:0f:0f:0f",
        ),
    ]
    expected = []
    for method, request, subject in refusals:
        world.clock.advance(1)
        err = await world.fails(method, request, ACME)
        expected.append((method, subject, error_details(err).reason, err.details()))
    listed = await errors_of(world)
    assert [(e.rpc, e.subject, e.reason, e.message) for e in listed] == expected[::-1]
    assert {e.carrier for e in listed} == {"carriers/acme"}
    assert {e.principal for e in listed} == {"carrier:acme"}
    assert [e.reason for e in listed][::-1][:3] == [
        "INVALID_FIELD",
        "SUBSCRIBER_EXISTS",
        "SUBSCRIBER_NOT_FOUND",
    ]
    times = [e.time.seconds for e in listed]
    assert times == sorted(times, reverse=True)
    # Beta's record is its own, and empty.
    assert not await errors_of(world, "carriers/beta", BETA)


async def test_failed_import_rows_are_listed_and_capped(world: Api) -> None:
    bad = [
        pb.ImportRow(row=n, subscriber_id=f"x{n}", display_name="X", region_code="bad")
        for n in range(2, PROVISIONING_ERRORS_KEPT + 12)
    ]
    summary = await run_import(world, bad)
    assert summary.failed == len(bad)
    assert await world.redis.xlen(errors_key("acme")) == PROVISIONING_ERRORS_KEPT
    assert len(await errors_of(world)) == 50  # the default page
    listed = await errors_of(world, size=10_000)
    assert len(listed) == PROVISIONING_ERRORS_KEPT
    assert listed[0].subject == f"row {bad[-1].row}"
    assert (listed[0].rpc, listed[0].reason) == ("ImportSubscribers", "IMPORT_ROW_FAILED")
    assert listed[0].message.startswith("region_code: ")


async def test_a_refused_import_is_listed_as_a_whole(world: Api) -> None:
    await world.call(
        "SetCarrierStatus",
        pb.SetCarrierStatusRequest(name="carriers/acme", status=pb.CARRIER_STATUS_SUSPENDED),
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await run_import(world, rows(("z1", ACTIVE)))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    [entry] = await errors_of(world, as_="admin")
    assert (entry.rpc, entry.subject, entry.reason) == (
        "ImportSubscribers",
        "import",
        "CARRIER_NOT_ACTIVE",
    )


async def test_no_one_fills_or_reads_another_carriers_record(world: Api) -> None:
    before = await world.redis.keys("*proverr*")
    # Beta's attempts on acme's data are refused as not its own: recorded nowhere.
    await world.fails(
        "BlockDevice",
        pb.BlockDeviceRequest(name=device_name("acme", ALICE_MAC), blocked=True),
        BETA,
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await run_import(world, rows(("z1", ACTIVE)), as_=BETA)
    # A carrier that does not exist gets no record either.
    err = await world.fails(
        "CreateSubscriber",
        pb.CreateSubscriberRequest(
            parent="carriers/ghost",
            subscriber_id="x",
            subscriber=pb.Subscriber(display_name="X", region_code="110101"),
        ),
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert await world.redis.keys("*proverr*") == before
    for parent, as_ in (("carriers/acme", BETA), ("", BETA), ("", "playback"), ("", ACME)):
        err = await world.fails(
            "ListProvisioningErrors", pb.ListProvisioningErrorsRequest(parent=parent), as_
        )
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, (parent, as_)


async def test_the_admin_reads_every_carriers_errors_newest_first(world: Api) -> None:
    for carrier, as_ in (("acme", ACME), ("beta", BETA), ("acme", "admin")):
        world.clock.advance(1)
        await world.fails(
            "SetSubscriberStatus",
            pb.SetSubscriberStatusRequest(
                name=f"carriers/{carrier}/subscribers/ghost", status=SUSPENDED
            ),
            as_,
        )
    listed = await errors_of(world, "", "admin")
    assert [(e.carrier, e.principal) for e in listed] == [
        ("carriers/acme", "admin"),
        ("carriers/beta", "carrier:beta"),
        ("carriers/acme", "carrier:acme"),
    ]
    assert len(await errors_of(world, "", "admin", size=2)) == 2


async def test_stored_text_has_no_control_characters(world: Api) -> None:
    await world.fails(
        "SetSubscriberStatus",
        pb.SetSubscriberStatusRequest(
            name="carriers/acme/subscribers/a\x00b\x1b[2J\u2028", status=SUSPENDED
        ),
        ACME,
    )
    [entry] = await errors_of(world)
    for text in (entry.subject, entry.message, entry.reason):
        assert forbidden_char(text) is None, text


@pytest.mark.parametrize(
    ("parent", "size", "field"),
    [
        pytest.param("carriers/", 0, "parent", id="empty-id"),
        pytest.param("carriers/acme/subscribers/alice", 0, "parent", id="subscriber"),
        pytest.param("carriers/acme", -1, "page_size", id="negative-page"),
    ],
)
async def test_bad_list_requests_are_refused_naming_the_field(
    world: Api, parent: str, size: int, field: str
) -> None:
    err = await world.fails(
        "ListProvisioningErrors", pb.ListProvisioningErrorsRequest(parent=parent, page_size=size)
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error_details(err).fields
