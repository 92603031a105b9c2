"""Use cases on carriers, the catalogue, subscriber accounts and entitlements."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from headend.auth import Principal, require_admin
from subscriber import domain
from subscriber.domain import Carrier, Entitlement, Package, Subscriber, SubscriberChanges
from subscriber.errors import EntitlementNotFound, InvalidField
from subscriber.service.base import ServiceBase, check_version
from subscriber.store import Audit


class AccountUseCases(ServiceBase):
    """Carriers and packages (admin), accounts and entitlements (carrier-scoped)."""

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
            domain.text_field(name, "name", max_chars=domain.NAME_MAX_CHARS, required=True),
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
        """The catalogue, for any authenticated caller but the playback role."""
        self._not_playback(principal)
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
        self, principal: Principal, carrier_id: str, *, limit: int, after: str
    ) -> tuple[list[Subscriber], str, int]:
        """Up to ``limit`` accounts by id after the id ``after``, the id the next page
        starts after ('' at the end) and the total."""
        self._scope(principal, carrier_id)
        subs, total = await self._store.list_subscribers(carrier_id, after=after, limit=limit)
        return subs, subs[-1].subscriber_id if len(subs) == limit else "", total

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
        check_version(before, expected_version)
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
            check_version(before, expected_version)
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
            before_status=before.status,
        )

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
        """The channels the account may watch at ``at`` (default now) and its version.

        The front door (playback) reads any carrier's lineups; carriers their own.
        """
        carrier = self._lineup_scope(principal, carrier_id)
        sub = await self._store.get_subscriber(carrier, subscriber_id)
        when = domain.validate_aware(at, "at") or self._now()
        channels = domain.effective_channels(sub.entitlements, await self._store.catalogue(), when)
        return channels, sub.version


def _package_record(package: Package) -> dict[str, object]:
    return {"name": package.name, "channel_ids": list(package.channel_ids)}
