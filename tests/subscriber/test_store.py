"""The authorize script (the hot path, in Redis) decides exactly as ``domain.decide``."""

from __future__ import annotations

from datetime import timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from protos import subscriber_pb2 as pb
from subscriber import domain
from subscriber.store import SubscriberStore
from tests.support.subscriber import ALICE_MAC, Api

ACME = "carrier:acme"


def _ts(api: Api, days: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(api.clock.now + timedelta(days=days))
    return stamp


async def _account(api: Api, carrier: str, sid: str, mac: str) -> None:
    await api.call(
        "CreateSubscriber",
        pb.CreateSubscriberRequest(
            carrier_id=carrier, subscriber_id=sid, display_name=sid, region_code="110101"
        ),
        as_=f"carrier:{carrier}",
    )
    await api.call(
        "BindDevice",
        pb.BindDeviceRequest(carrier_id=carrier, subscriber_id=sid, mac=mac),
        as_=f"carrier:{carrier}",
    )


async def test_authorize_script_matches_domain_decide(world: Api) -> None:
    macs = {f"aa:bb:cc:00:10:{i:02x}": f"s{i}" for i in range(7)}
    for mac, sid in macs.items():
        await _account(world, "acme", sid, mac)
    m = list(macs)
    await world.call(
        "Entitle",
        pb.EntitleRequest(
            carrier_id="acme",
            subscriber_id="s0",
            package_id="sports",
            valid_from=_ts(world, 1),
            valid_until=_ts(world, 3),
        ),
        as_=ACME,
    )
    await world.call(
        "Entitle",
        pb.EntitleRequest(carrier_id="acme", subscriber_id="s1", package_id="basic"),
        as_=ACME,
    )
    await world.call(
        "SetSubscriberStatus",
        pb.SetSubscriberStatusRequest(carrier_id="acme", subscriber_id="s1", status=pb.SUSPENDED),
        as_=ACME,
    )
    await world.call(
        "SetSubscriberStatus",
        pb.SetSubscriberStatusRequest(carrier_id="acme", subscriber_id="s2", status=pb.TERMINATED),
        as_=ACME,
    )
    s3 = await world.call(
        "Entitle",
        pb.EntitleRequest(carrier_id="acme", subscriber_id="s3", package_id="basic"),
        as_=ACME,
    )
    await world.call(
        "UpdateSubscriber",
        pb.UpdateSubscriberRequest(
            carrier_id="acme",
            subscriber_id="s3",
            expected_version=s3.version,
            service_end=_ts(world, 2),
        ),
        as_=ACME,
    )
    await world.call(
        "BlockDevice", pb.BlockDeviceRequest(carrier_id="acme", mac=m[4], blocked=True), as_=ACME
    )
    await world.call(
        "Entitle",
        pb.EntitleRequest(carrier_id="acme", subscriber_id="s5", package_id="basic"),
        as_=ACME,
    )
    await world.call(
        "CreateCarrier",
        pb.CreateCarrierRequest(carrier_id="gamma", name="Gamma", network_type=pb.MOBILE),
    )
    await _account(world, "gamma", "g0", "aa:bb:cc:00:20:00")
    await world.call(
        "Entitle",
        pb.EntitleRequest(carrier_id="gamma", subscriber_id="g0", package_id="basic"),
        as_="carrier:gamma",
    )
    await world.call(
        "SetCarrierStatus",
        pb.SetCarrierStatusRequest(carrier_id="gamma", status=pb.CARRIER_SUSPENDED),
    )
    store = SubscriberStore(world.redis)
    seen = set()
    for mac in [ALICE_MAC, *m, "aa:bb:cc:00:20:00", "aa:bb:cc:99:99:99"]:
        for channel in ("cctv1", "cctv5", "nope"):
            for days in (0, 1, 2, 2.5, 3, 4):
                at = world.clock.now + timedelta(days=days)
                state, packages = await store.playback_state(mac)
                expected = domain.decide(state, channel, packages, at)
                assert await store.authorize(mac, channel, at) == expected, (mac, channel, days)
                seen.add(expected.reason)
    assert seen == {None, *domain.DenyReason}  # every outcome was exercised
