"""Use cases on set-top boxes: bind, activate, block, unbind and replace."""

from __future__ import annotations

import secrets
from dataclasses import replace

from headend.auth import Principal
from subscriber import domain
from subscriber.domain import Device, DeviceStatus
from subscriber.errors import DeviceBlocked, DeviceNotFound, InvalidField, MacAlreadyBound
from subscriber.service.base import ServiceBase, secret_digest
from subscriber.store import Audit


class DeviceUseCases(ServiceBase):
    """A carrier's boxes; a MAC is unique platform-wide and its holder is never named."""

    def _device_text(self, serial: str, model: str) -> tuple[str, str]:
        limit = domain.DEVICE_TEXT_MAX_CHARS
        return (
            domain.text_field(serial, "serial", max_chars=limit, required=False),
            domain.text_field(model, "model", max_chars=limit, required=False),
        )

    async def bind_device(
        self,
        principal: Principal,
        carrier_id: str,
        subscriber_id: str,
        *,
        mac: str,
        serial: str,
        model: str,
    ) -> Device:
        """Bind a box to an account; a MAC bound anywhere is refused without naming the holder."""
        await self._writable(principal, carrier_id)
        mac = domain.normalize_mac(mac)
        serial, model = self._device_text(serial, model)
        sub = await self._store.get_subscriber(carrier_id, subscriber_id)
        domain.require_changeable(sub)
        if await self._store.mac_holder(mac) is not None:
            raise MacAlreadyBound("MAC address is already bound")
        now = self._now()
        device = Device(carrier_id, mac, subscriber_id, serial, model, "bound", now)
        after = domain.bump(sub, now, device_macs=(*sub.device_macs, mac))
        tx = self._store.device_tx(sub, device, bind=True, unbind=False, expected_status="")
        await self._store.save_subscriber(
            after,
            expected_version=sub.version,
            audit=Audit(str(principal), "BindDevice"),
            before_json="",
            after_json=domain.to_json(device.snapshot()),
            extra=tx,
            subject=f"device/{mac}",
        )
        return device

    async def _bound_device(self, carrier_id: str, mac: str) -> Device:
        device = await self._store.get_device(carrier_id, domain.normalize_mac(mac))
        if device.status == "unbound":
            raise DeviceNotFound("no such device")
        return device

    async def get_device(self, principal: Principal, carrier_id: str, mac: str) -> Device:
        """A box the carrier holds or held."""
        self._scope(principal, carrier_id)
        return await self._store.get_device(carrier_id, domain.normalize_mac(mac))

    async def list_devices(
        self, principal: Principal, carrier_id: str, subscriber_id: str
    ) -> list[Device]:
        """The boxes bound to an account."""
        self._scope(principal, carrier_id)
        sub = await self._store.get_subscriber(carrier_id, subscriber_id)
        return await self._store.list_devices(carrier_id, sub.device_macs)

    async def activate_device(
        self, principal: Principal, carrier_id: str, mac: str
    ) -> tuple[Device, str]:
        """Issue a new device secret (returned once; only its hash is stored)."""
        await self._writable(principal, carrier_id)
        before = await self._bound_device(carrier_id, mac)
        if before.status == "blocked":
            raise DeviceBlocked("the device is blocked")
        secret = secrets.token_urlsafe(32)
        after = replace(
            before,
            status="activated",
            activated_at=self._now(),
            secret_digest=secret_digest(secret),
        )
        await self._store.save_device_only(
            after,
            expected_status=before.status,
            audit=Audit(str(principal), "ActivateDevice"),
            before=domain.to_json(before.snapshot()),
            after=domain.to_json(after.snapshot()),
            now=self._now(),
        )
        return after, secret

    async def _device_change(
        self, principal: Principal, rpc: str, before: Device, after: Device, *, unbind: bool
    ) -> None:
        sub = await self._store.get_subscriber(before.carrier_id, before.subscriber_id)
        macs = tuple(m for m in sub.device_macs if not (unbind and m == before.mac))
        sub_after = domain.bump(sub, self._now(), device_macs=macs)
        tx = self._store.device_tx(
            sub, after, bind=False, unbind=unbind, expected_status=before.status
        )
        await self._store.save_subscriber(
            sub_after,
            expected_version=sub.version,
            audit=Audit(str(principal), rpc),
            before_json=domain.to_json(before.snapshot()),
            after_json=domain.to_json(after.snapshot()),
            extra=tx,
            subject=f"device/{before.mac}",
        )

    async def unbind_device(self, principal: Principal, carrier_id: str, mac: str) -> Device:
        """Release a box: its secret is forgotten and its MAC may be bound again."""
        await self._writable(principal, carrier_id)
        before = await self._bound_device(carrier_id, mac)
        after = replace(before, status="unbound", secret_digest="")
        await self._device_change(principal, "UnbindDevice", before, after, unbind=True)
        return after

    async def block_device(
        self, principal: Principal, carrier_id: str, mac: str, *, blocked: bool
    ) -> Device:
        """Block (or unblock) a box; a blocked box is refused playback."""
        await self._writable(principal, carrier_id)
        before = await self._bound_device(carrier_id, mac)
        status: DeviceStatus
        if blocked:
            status = "blocked"
        else:
            status = "activated" if before.secret_digest else "bound"
        if status == before.status:
            return before
        after = replace(before, status=status)
        await self._device_change(principal, "BlockDevice", before, after, unbind=False)
        return after

    async def replace_device(
        self,
        principal: Principal,
        carrier_id: str,
        *,
        old_mac: str,
        new_mac: str,
        serial: str,
        model: str,
    ) -> Device:
        """Swap a box for a new one on the same account in one atomic change."""
        await self._writable(principal, carrier_id)
        new = domain.normalize_mac(new_mac, "new_mac")
        serial, model = self._device_text(serial, model)
        old = await self._bound_device(carrier_id, domain.normalize_mac(old_mac, "old_mac"))
        if new == old.mac:
            raise InvalidField("new_mac", "is the device being replaced")
        if await self._store.mac_holder(new) is not None:
            raise MacAlreadyBound("MAC address is already bound")
        sub = await self._store.get_subscriber(carrier_id, old.subscriber_id)
        domain.require_changeable(sub)
        now = self._now()
        device = Device(carrier_id, new, sub.subscriber_id, serial, model, "bound", now)
        released = replace(old, status="unbound", secret_digest="")
        macs = tuple(sorted({*sub.device_macs, new} - {old.mac}))
        tx = self._store.device_tx(
            sub, released, bind=False, unbind=True, expected_status=old.status
        )
        tx = self._store.device_tx(sub, device, bind=True, unbind=False, expected_status="", tx=tx)
        await self._store.save_subscriber(
            domain.bump(sub, now, device_macs=macs),
            expected_version=sub.version,
            audit=Audit(str(principal), "ReplaceDevice"),
            before_json=domain.to_json({"mac": old.mac, **old.snapshot()}),
            after_json=domain.to_json({"mac": new, **device.snapshot()}),
            extra=tx,
            subject=f"device/{old.mac}",
        )
        return device
