"""Use cases of the subscriber service and who may run them (no gRPC here).

Scoping: the admin acts for every carrier; ``carrier:<id>`` only for ``<id>``
(PERMISSION_DENIED otherwise, before anything is read, so nothing can be
probed). RPCs keyed by MAC treat another carrier's box exactly like an
unknown one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from headend.auth import Principal, require_admin, require_tenant
from headend.errors import PermissionDenied
from subscriber import domain
from subscriber.domain import (
    AuditEntry,
    Carrier,
    Decision,
    Device,
    DeviceStatus,
    Entitlement,
    ImportRow,
    ImportSummary,
    LoginResult,
    Package,
    PlaybackState,
    RowError,
    Session,
    Subscriber,
    SubscriberChanges,
)
from subscriber.errors import (
    CarrierNotActive,
    CarrierNotFound,
    DeviceBlocked,
    DeviceLoginFailed,
    DeviceNotFound,
    EntitlementNotFound,
    ImportTooLarge,
    InvalidField,
    MacAlreadyBound,
    PlaybackDenied,
    VersionMismatch,
)
from subscriber.settings import SubscriberSettings
from subscriber.store import PLATFORM, Audit, SubscriberStore

Clock = Callable[[], datetime]
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
_PAGE_MAX = 500


def utc_now() -> datetime:
    """Now, to the millisecond (what the store keeps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def secret_digest(secret: str) -> str:
    """SHA-256 of a device secret; the secret is 256-bit random, so a fast hash suffices."""
    return hashlib.sha256(secret.encode()).hexdigest()


class SubscriberService:
    """Carriers, subscribers, boxes, packages, entitlements, playback and leases."""

    def __init__(
        self, *, store: SubscriberStore, settings: SubscriberSettings, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock

    # --- scoping and idempotency -----------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    @staticmethod
    def _scope(principal: Principal, carrier_id: str) -> str:
        # Colon-free ids keep every carrier's keys (sub:{carrier}:...) disjoint.
        domain.validate_carrier_id(carrier_id)
        require_tenant(principal, "carrier", carrier_id)
        return carrier_id

    async def _writable(self, principal: Principal, carrier_id: str) -> str:
        self._scope(principal, carrier_id)
        status = await self._store.carrier_status(carrier_id)
        if not status:
            raise CarrierNotFound(f"no carrier {carrier_id}")
        if status != "active" and not principal.is_admin:
            raise CarrierNotActive(f"carrier {carrier_id} is {status}")
        return carrier_id

    @staticmethod
    def _sees(principal: Principal, carrier_id: str, mac: str) -> bool:
        """Another carrier's box must look exactly like an unknown one."""
        if principal.is_admin:
            return True
        if principal.role == "carrier":
            return principal.tenant == carrier_id
        return principal.role == "device" and principal.tenant == mac

    def _visible(self, principal: Principal, state: PlaybackState | None) -> PlaybackState | None:
        if state is None or not self._sees(principal, state.device.carrier_id, state.device.mac):
            return None
        return state

    @staticmethod
    def _playback_caller(principal: Principal) -> None:
        if principal.role == "broadcaster":
            raise PermissionDenied(f"{principal} may not authorize playback")

    async def idempotent(
        self, principal: Principal, key: str, fingerprint: str, run: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """Run ``run`` once per (caller, key); a retry gets the first response back."""
        if not key:
            return await run()
        if not _IDEMPOTENCY_KEY.match(key):
            raise InvalidField("idempotency_key", "must be 1-128 printable ASCII characters")
        scope = principal.tenant if principal.role == "carrier" else f"_{principal.role}"
        if principal.role not in ("carrier", "admin"):
            scope += f"-{principal.tenant}"
        ttl = self._settings.idempotency_ttl_seconds
        replay = await self._store.idempotency_claim(scope, key, fingerprint, ttl)
        if replay is not None:
            return replay
        try:
            response = await run()
        except BaseException:
            await self._store.idempotency_release(scope, key)
            raise
        await self._store.idempotency_finish(scope, key, fingerprint, response, ttl)
        return response

    # --- carriers and catalogue ------------------------------------------------------------

    async def create_carrier(
        self, principal: Principal, carrier_id: str, name: str, network_type: str
    ) -> Carrier:
        """Admin: register a carrier (tenant)."""
        require_admin(principal)
        domain.validate_carrier_id(carrier_id)
        if network_type not in domain.NETWORK_TYPES:
            raise InvalidField("network_type", "must be telecom, mobile or cable")
        carrier = Carrier(
            carrier_id,
            domain.validate_text(name, "name", max_len=200, required=True),
            network_type,
            "active",
            self._now(),
        )
        after = domain.to_json(
            {"name": carrier.name, "network_type": network_type, "status": "active"}
        )
        await self._store.create_carrier(carrier, Audit(str(principal), "CreateCarrier"), after)
        return carrier

    async def get_carrier(self, principal: Principal, carrier_id: str) -> Carrier:
        """A carrier, for the admin or the carrier itself."""
        return await self._store.get_carrier(self._scope(principal, carrier_id))

    async def list_carriers(self, principal: Principal) -> list[Carrier]:
        """Admin: every carrier."""
        require_admin(principal)
        return await self._store.list_carriers()

    async def set_carrier_status(
        self, principal: Principal, carrier_id: str, status: str
    ) -> Carrier:
        """Admin: suspend or reactivate a carrier (suspended: its boxes may not play)."""
        require_admin(principal)
        if status not in domain.CARRIER_STATUSES:
            raise InvalidField("status", "must be active or suspended")
        before = await self._store.get_carrier(domain.validate_carrier_id(carrier_id))
        after = replace(before, status=status)
        if after != before:
            await self._store.set_carrier_status(
                carrier_id,
                after.status,
                Audit(str(principal), "SetCarrierStatus"),
                domain.to_json({"status": before.status}),
                domain.to_json({"status": status}),
                self._now(),
            )
        return after

    async def define_package(self, principal: Principal, package: Package) -> Package:
        """Admin: create or replace a catalogue package."""
        require_admin(principal)
        package = domain.validate_package(package)
        before = (await self._store.catalogue()).get(package.package_id)
        if before != package:
            await self._store.put_package(
                package,
                Audit(str(principal), "DefinePackage"),
                domain.to_json(None if before is None else _package_record(before)),
                domain.to_json(_package_record(package)),
                self._now(),
            )
        return package

    async def list_packages(self, principal: Principal) -> list[Package]:
        """The catalogue, for any authenticated caller."""
        return sorted((await self._store.catalogue()).values(), key=lambda p: p.package_id)

    # --- subscribers -----------------------------------------------------------------------

    async def create_subscriber(
        self,
        principal: Principal,
        carrier_id: str,
        *,
        subscriber_id: str,
        display_name: str,
        region_code: str,
        service_end: datetime | None,
        max_streams: int,
        contact_phone: str,
        contact_email: str,
    ) -> Subscriber:
        """Create an account at version 1."""
        await self._writable(principal, carrier_id)
        sub = domain.new_subscriber(
            carrier_id=carrier_id,
            subscriber_id=subscriber_id,
            display_name=display_name,
            region_code=region_code,
            service_end=service_end,
            max_streams=max_streams or self._settings.default_max_streams,
            contact_phone=contact_phone,
            contact_email=contact_email,
            now=self._now(),
        )
        await self._store.save_subscriber(
            sub,
            expected_version=0,
            audit=Audit(str(principal), "CreateSubscriber"),
            before_json="",
            after_json=domain.to_json(sub.snapshot()),
        )
        return sub

    async def get_subscriber(
        self, principal: Principal, carrier_id: str, subscriber_id: str
    ) -> Subscriber:
        """One account of the caller's carrier."""
        return await self._store.get_subscriber(self._scope(principal, carrier_id), subscriber_id)

    async def list_subscribers(
        self, principal: Principal, carrier_id: str, *, page_size: int, page_token: str
    ) -> tuple[list[Subscriber], str, int]:
        """A page of accounts by id, the next page token ('' at the end) and the total."""
        self._scope(principal, carrier_id)
        size = min(page_size or 100, _PAGE_MAX)
        subs, total = await self._store.list_subscribers(carrier_id, after=page_token, limit=size)
        token = subs[-1].subscriber_id if len(subs) == size else ""
        return subs, token, total

    async def update_subscriber(
        self,
        principal: Principal,
        carrier_id: str,
        subscriber_id: str,
        *,
        expected_version: int,
        changes: SubscriberChanges,
    ) -> Subscriber:
        """Change account fields if nobody changed the account since ``expected_version``."""
        await self._writable(principal, carrier_id)
        if expected_version <= 0:
            raise InvalidField("expected_version", "required for updates")
        before = await self._store.get_subscriber(carrier_id, subscriber_id)
        _check_version(before, expected_version)
        after = domain.apply_changes(before, changes, self._now())
        await self._save(principal, "UpdateSubscriber", before, after)
        return after

    async def set_subscriber_status(
        self,
        principal: Principal,
        carrier_id: str,
        subscriber_id: str,
        *,
        status: str,
        expected_version: int,
    ) -> Subscriber:
        """Suspend, reactivate or terminate (final) an account."""
        await self._writable(principal, carrier_id)
        before = await self._store.get_subscriber(carrier_id, subscriber_id)
        if expected_version:
            _check_version(before, expected_version)
        after = domain.change_status(before, status, self._now())
        if after is not before:
            await self._save(principal, "SetSubscriberStatus", before, after)
        return after

    async def _save(
        self, principal: Principal, rpc: str, before: Subscriber, after: Subscriber
    ) -> None:
        await self._store.save_subscriber(
            after,
            expected_version=before.version,
            audit=Audit(str(principal), rpc),
            before_json=domain.to_json(before.snapshot()),
            after_json=domain.to_json(after.snapshot()),
        )

    # --- devices ---------------------------------------------------------------------------

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
        serial = domain.validate_text(serial, "serial", max_len=64, required=False)
        model = domain.validate_text(model, "model", max_len=64, required=False)
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
        serial = domain.validate_text(serial, "serial", max_len=64, required=False)
        model = domain.validate_text(model, "model", max_len=64, required=False)
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

    # --- entitlements ----------------------------------------------------------------------

    async def entitle(
        self,
        principal: Principal,
        carrier_id: str,
        subscriber_id: str,
        *,
        package_id: str,
        valid_from: datetime | None,
        valid_until: datetime | None,
    ) -> Subscriber:
        """Grant (or re-window) a package; bumps the subscriber version."""
        await self._writable(principal, carrier_id)
        if package_id not in await self._store.catalogue():
            raise InvalidField("package_id", f"unknown package {package_id[:64]!r}")
        now = self._now()
        start = domain.validate_aware(valid_from, "valid_from") or now
        until = domain.validate_aware(valid_until, "valid_until")
        domain.validate_window(start, until)
        sub = await self._store.get_subscriber(carrier_id, subscriber_id)
        domain.require_changeable(sub)
        ent = Entitlement(package_id, start, until)
        old = next((e for e in sub.entitlements if e.package_id == package_id), None)
        if old == ent:
            return sub
        ents = tuple(
            sorted(
                [*(e for e in sub.entitlements if e is not old), ent], key=lambda e: e.package_id
            )
        )
        after = domain.bump(sub, now, entitlements=ents)
        await self._store.save_subscriber(
            after,
            expected_version=sub.version,
            audit=Audit(str(principal), "Entitle"),
            before_json=domain.to_json(None if old is None else domain.entitlement_record(old)),
            after_json=domain.to_json(domain.entitlement_record(ent)),
            extra=self._store.entitlement_tx(sub, ent, package_id),
            subject=f"subscriber/{subscriber_id}",
        )
        return after

    async def revoke_entitlement(
        self, principal: Principal, carrier_id: str, subscriber_id: str, package_id: str
    ) -> Subscriber:
        """Withdraw a package; bumps the subscriber version."""
        await self._writable(principal, carrier_id)
        sub = await self._store.get_subscriber(carrier_id, subscriber_id)
        old = next((e for e in sub.entitlements if e.package_id == package_id), None)
        if old is None:
            raise EntitlementNotFound(f"{subscriber_id} is not entitled to {package_id[:64]!r}")
        after = domain.bump(
            sub, self._now(), entitlements=tuple(e for e in sub.entitlements if e is not old)
        )
        await self._store.save_subscriber(
            after,
            expected_version=sub.version,
            audit=Audit(str(principal), "RevokeEntitlement"),
            before_json=domain.to_json(domain.entitlement_record(old)),
            after_json="",
            extra=self._store.entitlement_tx(sub, None, package_id),
        )
        return after

    async def list_entitlements(
        self, principal: Principal, carrier_id: str, subscriber_id: str
    ) -> Subscriber:
        """The account with its entitlements."""
        return await self.get_subscriber(principal, carrier_id, subscriber_id)

    async def effective_channels(
        self, principal: Principal, carrier_id: str, subscriber_id: str, at: datetime | None
    ) -> tuple[tuple[str, ...], int]:
        """The channels the account may watch at ``at`` (default now) and its version."""
        sub = await self.get_subscriber(principal, carrier_id, subscriber_id)
        when = domain.validate_aware(at, "at") or self._now()
        channels = domain.effective_channels(sub.entitlements, await self._store.catalogue(), when)
        return channels, sub.version

    # --- playback --------------------------------------------------------------------------

    async def device_login(self, mac: str, secret: str) -> LoginResult:
        """Public: a box proves itself with MAC + device secret and learns its lineup."""
        if not secret or len(secret) > 128:
            raise DeviceLoginFailed("unknown device or wrong secret")
        state, packages = await self._store.playback_state(domain.normalize_mac(mac))
        if (
            state is None
            or not state.device.secret_digest
            or not hmac.compare_digest(state.device.secret_digest, secret_digest(secret))
        ):
            raise DeviceLoginFailed("unknown device or wrong secret")
        now = self._now()
        reason = domain.account_denial(state, now)
        channels = (
            ()
            if reason
            else domain.effective_channels(state.subscriber.entitlements, packages, now)
        )
        return LoginResult(state, channels, reason)

    async def authorize(
        self, principal: Principal, mac: str, channel_id: str, at: datetime | None
    ) -> Decision:
        """Allowed or the machine-readable reason, with the subscriber version to cache by."""
        self._playback_caller(principal)
        domain.validate_id(channel_id, "channel_id")
        when = domain.validate_aware(at, "at") or self._now()
        mac = domain.normalize_mac(mac)
        decision = await self._store.authorize(mac, channel_id, when)
        if decision.carrier_id and not self._sees(principal, decision.carrier_id, mac):
            return Decision(domain.DenyReason.UNKNOWN_DEVICE)
        return decision

    async def _state(self, principal: Principal, mac: str) -> PlaybackState:
        self._playback_caller(principal)
        state, _ = await self._store.playback_state(mac)
        visible = self._visible(principal, state)
        if visible is None or visible.device.status == "unbound":
            raise DeviceNotFound("no such device")
        return visible

    async def start_session(self, principal: Principal, mac: str, channel_id: str) -> Session:
        """Take (or, for a channel switch, reuse) one of the subscriber's stream slots."""
        mac = domain.normalize_mac(mac)
        domain.validate_id(channel_id, "channel_id")
        self._playback_caller(principal)
        now = self._now()
        state, packages = await self._store.playback_state(mac)
        decision = domain.decide(self._visible(principal, state), channel_id, packages, now)
        if decision.reason is not None or state is None:
            reason = decision.reason or domain.DenyReason.UNKNOWN_DEVICE
            raise PlaybackDenied(f"playback refused: {reason}", details={"reason": reason})
        sub = state.subscriber
        ttl = timedelta(seconds=self._settings.lease_ttl_seconds)
        session_id, reused, active = await self._store.start_lease(
            sub.carrier_id,
            sub.subscriber_id,
            session_id=secrets.token_hex(8),
            mac=mac,
            channel=channel_id,
            now=now,
            ttl_ms=_millis(ttl),
            grace_ms=_millis(timedelta(seconds=self._settings.lease_grace_seconds)),
            limit=sub.max_streams,
        )
        return Session(session_id, mac, channel_id, now + ttl, reused, active, sub.max_streams)

    async def heartbeat(self, principal: Principal, mac: str, session_id: str) -> Session:
        """Keep a lease alive for another TTL."""
        return await self._touch(principal, mac, session_id, end=False)

    async def end_session(self, principal: Principal, mac: str, session_id: str) -> None:
        """End a lease; its slot stays reserved for the same box for the grace period."""
        await self._touch(principal, mac, session_id, end=True)

    async def _touch(
        self, principal: Principal, mac: str, session_id: str, *, end: bool
    ) -> Session:
        mac = domain.normalize_mac(mac)
        if not re.fullmatch(r"[0-9a-f]{16}", session_id):
            raise InvalidField("session_id", "not a session id")
        state = await self._state(principal, mac)
        sub = state.subscriber
        seconds = self._settings.lease_grace_seconds if end else self._settings.lease_ttl_seconds
        channel, expires, active = await self._store.touch_lease(
            sub.carrier_id,
            sub.subscriber_id,
            session_id=session_id,
            mac=mac,
            now=self._now(),
            extend_ms=_millis(timedelta(seconds=seconds)),
            end=end,
        )
        return Session(session_id, mac, channel, expires, False, active, sub.max_streams)

    # --- bulk provisioning -----------------------------------------------------------------

    async def import_stream(
        self, principal: Principal, chunks: AsyncIterator[tuple[str, Sequence[ImportRow]]]
    ) -> ImportSummary:
        """Validate and upsert streamed rows; report every refused row.

        Rows go to Redis in batches of ``import_batch_rows``, one script call
        each, strictly in order; validating the next batch overlaps the
        current batch's round trip. When this returns, every row is stored.
        """
        carrier = ""
        summary = ImportSummary()
        pending: asyncio.Task[ImportSummary] | None = None
        batch_rows = self._settings.import_batch_rows
        try:
            async for chunk_carrier, rows in chunks:
                if not carrier:
                    carrier = await self._writable(principal, chunk_carrier)
                elif chunk_carrier != carrier:
                    raise InvalidField("carrier_id", "every chunk must name the same carrier")
                if len(rows) > self._settings.import_chunk_rows_max:
                    raise ImportTooLarge(
                        f"a chunk holds at most {self._settings.import_chunk_rows_max} rows",
                        details={"limit": str(self._settings.import_chunk_rows_max)},
                    )
                packages = await self._store.catalogue()
                now = self._now()
                for start in range(0, len(rows), batch_rows):
                    valid, refused = self._validate_rows(
                        rows[start : start + batch_rows], packages, now
                    )
                    summary = summary.merge(ImportSummary(rows=len(refused), errors=refused))
                    if pending is not None:
                        summary = summary.merge(await pending)
                        pending = None
                    if valid:
                        pending = asyncio.create_task(
                            self._store.import_rows(
                                carrier, valid, principal=str(principal), now=now
                            )
                        )
            if pending is not None:
                summary = summary.merge(await pending)
                pending = None
        finally:
            if pending is not None:
                # Let the batch in flight land (or fail) before reporting the failure.
                with contextlib.suppress(Exception):
                    await pending
        return replace(summary, errors=tuple(sorted(summary.errors, key=lambda e: e.row)))

    def _validate_rows(
        self, rows: Sequence[ImportRow], packages: Mapping[str, Package], now: datetime
    ) -> tuple[list[ImportRow], tuple[RowError, ...]]:
        valid: list[ImportRow] = []
        refused: list[RowError] = []
        for row in rows:
            try:
                valid.append(
                    domain.validate_import_row(
                        row,
                        default_max_streams=self._settings.default_max_streams,
                        packages=packages,
                        now=now,
                    )
                )
            except InvalidField as err:
                refused.append(RowError(row.row, err.field, err.reason))
        return valid, tuple(refused)

    # --- audit -----------------------------------------------------------------------------

    async def list_audit(
        self, principal: Principal, carrier_id: str, *, page_size: int, page_token: str
    ) -> tuple[list[AuditEntry], str]:
        """A page of the carrier's audit stream (admin: '' = the platform catalogue stream)."""
        if carrier_id:
            self._scope(principal, carrier_id)
        else:
            require_admin(principal)
        if page_token and not re.fullmatch(r"\d{1,20}-\d{1,20}", page_token):
            raise InvalidField("page_token", "not a page token")
        size = min(page_size or 100, _PAGE_MAX)
        entries = await self._store.list_audit(carrier_id or PLATFORM, after=page_token, limit=size)
        return entries, entries[-1].entry_id if len(entries) == size else ""


def _check_version(sub: Subscriber, expected: int) -> None:
    if sub.version != expected:
        raise VersionMismatch(
            f"subscriber {sub.subscriber_id} is at version {sub.version}, not {expected}",
            details={"expected_version": str(expected), "current_version": str(sub.version)},
        )


def _millis(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


def _package_record(package: Package) -> dict[str, object]:
    return {"name": package.name, "channel_ids": list(package.channel_ids)}
