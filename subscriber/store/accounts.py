"""Subscribers, their entitlements and their boxes.

Every write here runs in the carrier's slot; a box binding or unbinding adds the MAC
index steps :meth:`StoreBase._run` orders around it (claim first, keep or drop last).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

from subscriber.domain import Device, Entitlement, Subscriber
from subscriber.errors import (
    DeviceNotFound,
    MacAlreadyBound,
    SubscriberExists,
    SubscriberNotFound,
    VersionMismatch,
)
from subscriber.store.base import Audit, StoreBase, Tx, redis_errors
from subscriber.store.codec import (
    counts_key,
    decode_device,
    decode_subscriber,
    dev_key,
    device_fields,
    entitlement_value,
    flatten,
    holder_value,
    mac_key,
    parse_holder,
    sub_key,
    subs_key,
    subscriber_fields,
)


class AccountStore(StoreBase):
    """Subscribers, entitlements and boxes."""

    # --- subscribers -----------------------------------------------------------------------

    @redis_errors
    async def get_subscriber(self, carrier: str, subscriber_id: str) -> Subscriber:
        """One subscriber with its rights and boxes, or ``SubscriberNotFound``."""
        raw = await self._redis.hgetall(sub_key(carrier, subscriber_id))
        if not raw:
            raise SubscriberNotFound(f"no subscriber {subscriber_id}")
        return decode_subscriber(carrier, subscriber_id, raw)

    @redis_errors
    async def list_subscribers(
        self, carrier: str, *, after: str, limit: int
    ) -> tuple[list[Subscriber], int]:
        """A page of subscribers by id after ``after``, and the carrier's total count."""
        start = f"({after}" if after else "-"
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrange(subs_key(carrier), start, "+", bylex=True, offset=0, num=limit)
            pipe.zcard(subs_key(carrier))
            ids_raw, total = await pipe.execute()
        ids = [i.decode() for i in ids_raw]
        async with self._redis.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.hgetall(sub_key(carrier, sid))
            rows = await pipe.execute()
        subs = [decode_subscriber(carrier, s, r) for s, r in zip(ids, rows, strict=True) if r]
        return subs, int(total)

    @redis_errors
    async def save_subscriber(
        self,
        after: Subscriber,
        *,
        expected_version: int,
        audit: Audit,
        before_json: str,
        after_json: str,
        extra: Tx | None = None,
        subject: str = "",
        before_status: str = "",
    ) -> None:
        """Write the account fields if the stored version is ``expected_version`` (0 = new);
        the carrier's counts move with a new subscriber or a status other than
        ``before_status`` (the status read at ``expected_version``)."""
        tx = extra or Tx()
        key = sub_key(after.carrier_id, after.subscriber_id)
        counts = counts_key(after.carrier_id)
        tx.hfield(key, "v", str(expected_version) if expected_version else "", "version")
        tx.write("HSET", key, *flatten(subscriber_fields(after)))
        if not expected_version:
            tx.write("ZADD", subs_key(after.carrier_id), 0, after.subscriber_id)
            tx.write("HINCRBY", counts, after.status, 1)
        elif before_status and before_status != after.status:
            tx.write("HINCRBY", counts, before_status, -1)
            tx.write("HINCRBY", counts, after.status, 1)
        self._audit(
            tx,
            after.carrier_id,
            audit,
            subject or f"subscriber/{after.subscriber_id}",
            before_json,
            after_json,
            after.updated_at,
        )
        failed = await self._run(tx)
        if failed is None:
            return
        label, current = failed
        if label == "version" and not expected_version:
            raise SubscriberExists(f"subscriber {after.subscriber_id} exists")
        if label == "version":
            raise VersionMismatch(
                f"subscriber {after.subscriber_id} changed concurrently",
                details={
                    "expected_version": str(expected_version),
                    "current_version": current or "0",
                },
            )
        if label == "mac":
            raise MacAlreadyBound("MAC address is already bound")
        raise VersionMismatch("the device changed concurrently; retry")

    def entitlement_tx(self, sub: Subscriber, ent: Entitlement | None, package_id: str) -> Tx:
        """Writes that set (or, with ``ent`` None, remove) one entitlement."""
        tx = Tx()
        key = sub_key(sub.carrier_id, sub.subscriber_id)
        if ent is None:
            tx.write("HDEL", key, f"ent:{package_id}")
        else:
            tx.write("HSET", key, f"ent:{package_id}", entitlement_value(ent))
        return tx

    # --- devices ---------------------------------------------------------------------------

    @redis_errors
    async def get_device(self, carrier: str, mac: str) -> Device:
        """A box the carrier holds (or held), or ``DeviceNotFound``."""
        raw = await self._redis.hgetall(dev_key(carrier, mac))
        if not raw:
            raise DeviceNotFound("no such device")
        return decode_device(carrier, mac, raw)

    @redis_errors
    async def list_devices(self, carrier: str, macs: Sequence[str]) -> list[Device]:
        """The boxes with these MACs."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for mac in macs:
                pipe.hgetall(dev_key(carrier, mac))
            rows = await pipe.execute()
        return [decode_device(carrier, m, r) for m, r in zip(macs, rows, strict=True) if r]

    def device_tx(
        self,
        sub: Subscriber,
        device: Device,
        *,
        bind: bool,
        unbind: bool,
        expected_status: str,
        tx: Tx | None = None,
    ) -> Tx:
        """Guards and writes for a device change that rides along a subscriber save."""
        tx = tx or Tx()
        dkey = dev_key(sub.carrier_id, device.mac)
        skey = sub_key(sub.carrier_id, sub.subscriber_id)
        if bind:
            claim = secrets.token_hex(4)
            tx.claim(device.mac, holder_value(sub.carrier_id, sub.subscriber_id, claim))
            tx.write("DEL", dkey)
            tx.write("HSET", skey, f"dev:{device.mac}", "1")
        else:
            # Still this subscriber's box, in the state the caller read.
            tx.hfield(dkey, "sub", sub.subscriber_id, "device")
            tx.hfield(dkey, "st", expected_status, "device")
        if unbind:
            tx.release(device.mac, sub.carrier_id, sub.subscriber_id)
            tx.write("HDEL", skey, f"dev:{device.mac}")
        tx.write("HSET", dkey, *flatten(device_fields(device)))
        return tx

    @redis_errors
    async def save_device_only(
        self,
        device: Device,
        *,
        expected_status: str,
        audit: Audit,
        before: str,
        after: str,
        now: datetime,
    ) -> None:
        """Change a box without touching its subscriber's version (activation)."""
        tx = Tx()
        dkey = dev_key(device.carrier_id, device.mac)
        tx.hfield(dkey, "sub", device.subscriber_id, "device")
        tx.hfield(dkey, "st", expected_status, "device")
        tx.write("HSET", dkey, *flatten(device_fields(device)))
        self._audit(tx, device.carrier_id, audit, f"device/{device.mac}", before, after, now)
        if await self._run(tx) is not None:
            raise VersionMismatch(f"device {device.mac} changed concurrently")

    @redis_errors
    async def mac_holder(self, mac: str) -> tuple[str, str] | None:
        """(carrier, subscriber) holding ``mac``; internal use only, never shown to callers.
        An entry naming no bound box (see ``StoreBase._left_over``) holds nothing."""
        raw = await self._redis.get(mac_key(mac))
        if raw is None or await self._left_over(mac, raw):
            return None
        return parse_holder(raw)
