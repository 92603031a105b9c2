"""Use cases on the playback path: box login, the authorize decision and stream leases.

One stream per box: a box's new lease (``StartSession``) replaces the lease it
holds (a channel switch), so the subscriber's ``max_streams`` counts boxes
playing at once. A lease is bound to its box: another box's lease id is not found.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta

from headend.auth import Principal
from headend.ids import LEASE_ID_RULE, is_lease_id, new_lease_id
from subscriber import domain
from subscriber.domain import Decision, Lease, LoginResult, PlaybackState
from subscriber.errors import DeviceLoginFailed, DeviceNotFound, InvalidField, PlaybackDenied
from subscriber.service.base import ServiceBase, millis, secret_digest


class PlaybackUseCases(ServiceBase):
    """What the set-top box front door (the playback role) and the boxes themselves call."""

    async def device_login(self, mac: str, secret: str) -> LoginResult:
        """Public: a box proves itself with MAC + device secret and learns its lineup and
        what its model plays (its device profile, without the profile's models: the
        front door needs what to offer, not which other models share it)."""
        if not secret or len(secret) > 128:
            raise DeviceLoginFailed("unknown device or wrong secret")
        state, packages, profile = await self._store.login_state(domain.normalize_mac(mac))
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
        sub = state.subscriber
        return LoginResult(
            carrier_id=sub.carrier_id,
            subscriber_id=sub.subscriber_id,
            mac=state.device.mac,
            region_code=sub.region_code,
            status=sub.status,
            subscriber_version=sub.version,
            channel_ids=channels,
            deny_reason=reason,
            device_profile=profile,
        )

    async def authorize(
        self, principal: Principal, mac: str, channel_id: str, at: datetime | None
    ) -> Decision:
        """Allowed or the machine-readable reason, with the subscriber version to cache by."""
        self._playback_caller(principal)
        domain.validate_id(channel_id, "channel_id")
        now = self._now()
        when = domain.validate_aware(at, "at") or now
        mac = domain.normalize_mac(mac)
        decision = await self._store.authorize(mac, channel_id, when, now)
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

    def _lease_times(self) -> tuple[timedelta, timedelta]:
        return (
            timedelta(seconds=self._settings.lease_ttl_seconds),
            timedelta(seconds=self._settings.lease_grace_seconds),
        )

    async def start_lease(self, principal: Principal, mac: str, channel_id: str) -> Lease:
        """Take the box's one stream: a new lease, replacing the one the box held (if any)."""
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
        ttl, grace = self._lease_times()
        grant = await self._store.start_lease(
            sub.carrier_id,
            sub.subscriber_id,
            lease_id=new_lease_id(),
            mac=mac,
            channel=channel_id,
            now=now,
            ttl_ms=millis(ttl),
            grace_ms=millis(grace),
            limit=sub.max_streams,
        )
        return Lease(
            grant.lease_id,
            mac,
            channel_id,
            now + ttl,
            bool(grant.replaced_lease_id),
            grant.active,
            sub.max_streams,
            grant.replaced_lease_id,
        )

    async def heartbeat(self, principal: Principal, mac: str, lease_id: str) -> Lease:
        """Keep the box's lease alive for another TTL."""
        return await self._touch(principal, mac, lease_id, end=False)

    async def end_lease(self, principal: Principal, mac: str, lease_id: str) -> None:
        """End a lease; its slot stays reserved for the same box for the grace period."""
        await self._touch(principal, mac, lease_id, end=True)

    async def _touch(self, principal: Principal, mac: str, lease_id: str, *, end: bool) -> Lease:
        mac = domain.normalize_mac(mac)
        if not is_lease_id(lease_id):
            raise InvalidField("lease_id", f"not a lease id ({LEASE_ID_RULE})")
        state = await self._state(principal, mac)
        sub = state.subscriber
        ttl, grace = self._lease_times()
        touched = await self._store.touch_lease(
            sub.carrier_id,
            sub.subscriber_id,
            lease_id=lease_id,
            mac=mac,
            now=self._now(),
            extend_ms=millis(grace if end else ttl),
            keep_ms=millis(ttl + grace),
            end=end,
        )
        return Lease(
            lease_id,
            mac,
            touched.channel_id,
            touched.expires_at,
            False,
            touched.active,
            sub.max_streams,
        )
