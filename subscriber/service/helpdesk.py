"""The helpdesk's use cases: a box's latest requests and live leases, subscriber counts,
refused provisioning requests; and the recording and counting of what boxes ask.

Recording wraps the playback use cases (this class comes before them in
``SubscriberService``'s bases) instead of living inside them: a login is recorded here,
one write off the hot path; an ``Authorize`` decision, a lease granted or refused for the
stream limit, and a lease ended are recorded by the store's scripts in the same step as
the answer (``subscriber.store.helpdesk``); a lease refused before any script runs is
recorded here. Metrics count every answer (:mod:`subscriber.metrics`).

Who sees what: the admin every carrier; a carrier only its own. ``carriers/-`` resolves a
box's carrier through the MAC index for the admin; for a carrier it means its own, so
another carrier's box is not found, exactly like a box that does not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from headend.auth import Principal, require_admin
from headend.clock import utc_now
from headend.errors import PermissionDenied
from headend.text import sanitize
from subscriber import domain
from subscriber.domain import Decision, Device, Lease, LoginResult, RowError
from subscriber.domain.helpdesk import (
    BAD_SECRET,
    DEVICE_EVENTS_TTL_SECONDS,
    PROVISIONING_ERRORS_KEPT,
    STREAM_LIMIT_REACHED,
    DeviceEvent,
    ProvisioningError,
    SubscriberCount,
)
from subscriber.errors import (
    DeviceLoginFailed,
    DeviceNotFound,
    InvalidField,
    PlaybackDenied,
    StoreUnavailable,
    StreamLimitReached,
)
from subscriber.metrics import SubscriberMetrics, outcome
from subscriber.service.base import Clock
from subscriber.service.bulk import BulkUseCases
from subscriber.service.playback import PlaybackUseCases
from subscriber.settings import SubscriberSettings
from subscriber.store import SubscriberStore
from subscriber.store.helpdesk import ANY_CARRIER, NO_CARRIER, event_line

log = logging.getLogger(__name__)

# carriers/-/devices/{mac}: the box under any carrier the caller may read.
WILDCARD = "-"
# Stored text of a refused request: enough to read, never a whole request.
_SUBJECT_MAX_CHARS = 200
_MESSAGE_MAX_CHARS = 500


@dataclass(frozen=True, slots=True)
class DeviceHistory:
    """What the helpdesk sees of a box: the box, its latest events (newest first) and its
    subscriber's live leases."""

    device: Device
    events: tuple[DeviceEvent, ...]
    leases: tuple[Lease, ...]


class HelpdeskUseCases(PlaybackUseCases, BulkUseCases):
    """Box histories, counts and provisioning errors; records and counts box requests."""

    def __init__(
        self,
        *,
        store: SubscriberStore,
        settings: SubscriberSettings,
        clock: Clock = utc_now,
        metrics: SubscriberMetrics | None = None,
    ) -> None:
        super().__init__(store=store, settings=settings, clock=clock)
        self._metrics = metrics or SubscriberMetrics()

    # --- recording what boxes ask ----------------------------------------------------------

    async def device_login(self, mac: str, secret: str) -> LoginResult:
        """``PlaybackUseCases.device_login``, recorded and counted."""
        try:
            result = await super().device_login(mac, secret)
        except DeviceLoginFailed:
            await self._login_refused(mac)
            raise
        refusal = result.deny_reason.value if result.deny_reason else ""
        self._metrics.logins.labels(outcome(refusal)).inc()
        await self._record(result.carrier_id, result.mac, "login", refusal=refusal)
        return result

    async def _login_refused(self, mac: str) -> None:
        box = await self._box(None, mac)
        if box is None:  # no box to record it for
            self._metrics.logins.labels(outcome(domain.DenyReason.UNKNOWN_DEVICE)).inc()
            return
        self._metrics.logins.labels(outcome(BAD_SECRET)).inc()
        detail = "" if box.secret_digest else "the box is not activated (no secret)"
        await self._record(box.carrier_id, box.mac, "login", BAD_SECRET, detail=detail)

    async def _box(self, principal: Principal | None, mac: str) -> Device | None:
        """The box ``mac`` names, as ``principal`` sees it (None: as it is), to record a
        refusal for; None when there is none or the store cannot say."""
        try:
            state, _ = await self._store.playback_state(domain.normalize_mac(mac))
        except (InvalidField, StoreUnavailable):
            return None
        if principal is not None:
            state = self._visible(principal, state)
        return None if state is None else state.device

    async def authorize(
        self, principal: Principal, mac: str, channel_id: str, at: datetime | None
    ) -> Decision:
        """``PlaybackUseCases.authorize``, counted; the store's script records it on a box
        the caller sees."""
        if principal.is_admin or principal.role == "playback":
            scope = ANY_CARRIER
        else:
            scope = principal.tenant if principal.role == "carrier" else NO_CARRIER
        with self._store.recording_for(scope):
            decision = await super().authorize(principal, mac, channel_id, at)
        self._metrics.decision(decision.reason.value if decision.reason else "")
        return decision

    async def start_lease(self, principal: Principal, mac: str, channel_id: str) -> Lease:
        """``PlaybackUseCases.start_lease``, counted; a refusal made before the lease script
        (which records grants and the stream limit itself) is recorded here."""
        try:
            lease = await super().start_lease(principal, mac, channel_id)
        except StreamLimitReached:
            self._metrics.lease_starts.labels(outcome(STREAM_LIMIT_REACHED)).inc()
            raise
        except PlaybackDenied as err:
            refusal = err.details.get("reason", "")
            self._metrics.lease_starts.labels(outcome(refusal)).inc()
            box = await self._box(principal, mac)
            if box is not None:
                await self._record(box.carrier_id, box.mac, "start_session", refusal, channel_id)
            raise
        except DeviceNotFound:
            self._metrics.lease_starts.labels(outcome(domain.DenyReason.UNKNOWN_DEVICE)).inc()
            raise
        self._metrics.lease_starts.labels(outcome("")).inc()
        return lease

    async def _record(
        self,
        carrier_id: str,
        mac: str,
        kind: str,
        refusal: str = "",
        channel_id: str = "",
        *,
        detail: str = "",
    ) -> None:
        line = event_line(self._now(), kind, channel_id, refusal, detail)
        try:
            await self._store.record_device_event(carrier_id, mac, line)
        except StoreUnavailable:
            # The answer stands; only its record is lost.
            log.warning("device event not recorded", extra={"mac": mac, "kind": kind})

    # --- the helpdesk's reads --------------------------------------------------------------

    async def device_history(
        self, principal: Principal, carrier_id: str, mac: str, *, limit: int
    ) -> DeviceHistory:
        """A box's latest ``limit`` events and its subscriber's live leases; ``carrier_id``
        ``-`` finds the box under any carrier the caller may read."""
        mac = domain.normalize_mac(mac)
        if carrier_id != WILDCARD:
            self._scope(principal, carrier_id)
        elif principal.role == "carrier":
            carrier_id = principal.tenant
        else:
            require_admin(principal)
            holder = await self._store.mac_holder(mac)
            if holder is None:
                raise DeviceNotFound("no such device")
            carrier_id = holder[0]
        device = await self._store.get_device(carrier_id, mac)
        now = self._now()
        # The list lives a week after its latest event; each event is shown for a week.
        oldest = now - timedelta(seconds=DEVICE_EVENTS_TTL_SECONDS)
        events = await self._store.device_events(carrier_id, mac, limit=limit)
        leases: tuple[Lease, ...] = ()
        if device.status != "unbound":
            sub = await self._store.get_subscriber(carrier_id, device.subscriber_id)
            live = await self._store.live_leases(carrier_id, sub.subscriber_id, now)
            leases = tuple(
                Lease(lease_id, box, channel, expires, False, len(live), sub.max_streams)
                for lease_id, box, channel, expires in live
            )
        return DeviceHistory(device, tuple(e for e in events if e.time >= oldest), leases)

    async def count_subscribers(self, principal: Principal) -> list[SubscriberCount]:
        """Subscribers by carrier and status: every carrier for the admin, its own for a
        carrier (none when it does not exist)."""
        if principal.role == "carrier":
            exists = await self._store.carrier_status(principal.tenant)
            carriers = [principal.tenant] if exists else []
        else:
            require_admin(principal)
            carriers = await self._store.carrier_ids()
        return await self._store.subscriber_counts(carriers)

    async def list_provisioning_errors(
        self, principal: Principal, carrier_id: str, *, limit: int
    ) -> list[ProvisioningError]:
        """A carrier's latest ``limit`` refused provisioning requests, newest first
        (``carrier_id`` '': every carrier's, admin only)."""
        if carrier_id:
            carriers = [self._scope(principal, carrier_id)]
        else:
            require_admin(principal)
            carriers = await self._store.carrier_ids()
        return await self._store.provisioning_errors(carriers, limit=limit)

    # --- recording refused provisioning requests -------------------------------------------

    async def record_refusal(
        self,
        principal: Principal,
        carrier_id: str,
        rpc: str,
        *,
        subject: str,
        reason: str,
        message: str,
    ) -> None:
        """Record a refused request on ``carrier_id``'s resources, when the caller may act
        for that carrier (no one can fill another carrier's record)."""
        await self._record_errors(principal, carrier_id, rpc, [(subject, reason, message)])

    async def record_import_failures(
        self, principal: Principal, carrier_id: str, failed: Sequence[RowError]
    ) -> None:
        """Record an import's failed rows (the latest the carrier keeps, at most)."""
        kept = failed[-PROVISIONING_ERRORS_KEPT:]
        rows = [(f"row {e.row}", "IMPORT_ROW_FAILED", f"{e.field}: {e.error}") for e in kept]
        await self._record_errors(principal, carrier_id, "ImportSubscribers", rows)

    async def _record_errors(
        self,
        principal: Principal,
        carrier_id: str,
        rpc: str,
        items: Sequence[tuple[str, str, str]],
    ) -> None:
        try:
            self._scope(principal, carrier_id)
        except (PermissionDenied, InvalidField):
            return
        now = self._now()
        errors = [
            ProvisioningError(
                now,
                carrier_id,
                str(principal),
                rpc,
                sanitize(subject[:_SUBJECT_MAX_CHARS]),
                sanitize(reason[:_SUBJECT_MAX_CHARS]),
                sanitize(message[:_MESSAGE_MAX_CHARS]),
            )
            for subject, reason, message in items
        ]
        try:
            if await self._store.record_provisioning_errors(carrier_id, errors):
                self._metrics.provisioning_errors.labels(rpc).inc(len(errors))
        except StoreUnavailable:
            log.warning("provisioning errors not recorded", extra={"carrier": carrier_id})
