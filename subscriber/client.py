"""The one client of ``SubscriberService``: domain values in and out, the server's errors rebuilt.

Every caller dials the subscriber service through :class:`SubscriberClient`:
the front door (login, authorization, stream leases), ``headend subscribers``
and the demo's seeding. A failed call raises the ``SubscriberError`` leaf the
service raised (``DeviceLoginFailed``, ``StreamLimitReached``,
``PlaybackDenied``, ``LeaseNotFound`` ...), rebuilt from the ``ErrorInfo`` it
sent, or ``ServiceUnavailable`` when it got no answer::

    async with SubscriberClient("subscriber.internal:50052", api_key) as subscribers:
        lease = await subscribers.start_lease(mac, "cctv1")
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from google.protobuf import field_mask_pb2

from headend.auth import Principal
from headend.rpc import ServiceClient, to_timestamp
from headend.rpc.resources import MAX_PAGE_SIZE
from protos import keys_pb2, keys_pb2_grpc
from protos import subscriber_pb2 as pb
from protos import subscriber_pb2_grpc as pb_grpc
from subscriber import convert
from subscriber import convert_profiles as cp
from subscriber.convert import CARRIER, ENTITLEMENT, SUBSCRIBER, device_name
from subscriber.domain import (
    AuditEntry,
    Carrier,
    Decision,
    Device,
    DeviceProfile,
    Entitlement,
    ImportRow,
    ImportSummary,
    Lease,
    LoginResult,
    NetworkType,
    Package,
    Subscriber,
    SubscriberChanges,
    SubscriberStatus,
    normalize_mac,
)
from subscriber.domain.helpdesk import DeviceEvent, ProvisioningError, SubscriberCount
from subscriber.errors import SubscriberError


class SubscriberClient(ServiceClient):
    """``SubscriberService`` (and the ``KeyService`` beside it) over one gRPC channel, with an
    API key and a per-call timeout; a bulk import runs as long as it has rows to send."""

    service = "subscriber"
    root = SubscriberError

    @functools.cached_property
    def _stub(self) -> pb_grpc.SubscriberServiceStub:
        return pb_grpc.SubscriberServiceStub(self.channel)

    @functools.cached_property
    def _keys(self) -> keys_pb2_grpc.KeyServiceStub:
        return keys_pb2_grpc.KeyServiceStub(self.channel)

    async def whoami(self) -> Principal:
        """The principal this client's API key stands for."""
        me: keys_pb2.WhoAmIResponse = await self.call(self._keys.WhoAmI, keys_pb2.WhoAmIRequest())
        return Principal.parse(me.principal)

    # ---- carriers and the package catalogue

    async def create_carrier(
        self, carrier_id: str, name: str, network_type: NetworkType, *, idempotency_key: str = ""
    ) -> Carrier:
        """Register a carrier (admin)."""
        request = pb.CreateCarrierRequest(
            carrier_id=carrier_id,
            carrier=pb.Carrier(display_name=name, network_type=convert.NETWORK_PB[network_type]),
            idempotency_key=idempotency_key,
        )
        return convert.carrier_from_pb(await self.call(self._stub.CreateCarrier, request))

    async def define_package(self, package: Package, *, idempotency_key: str = "") -> Package:
        """Create or replace a package of the catalogue (admin)."""
        request = pb.DefinePackageRequest(
            package=convert.package(package), idempotency_key=idempotency_key
        )
        return convert.package_from_pb(await self.call(self._stub.DefinePackage, request))

    async def list_packages(self) -> list[Package]:
        """The package catalogue, every page of it."""
        packages: list[Package] = []
        token = ""
        while True:
            request = pb.ListPackagesRequest(page_size=MAX_PAGE_SIZE, page_token=token)
            reply: pb.ListPackagesResponse = await self.call(self._stub.ListPackages, request)
            packages.extend(convert.package_from_pb(p) for p in reply.packages)
            token = reply.next_page_token
            if not token:
                return packages

    # ---- device profiles

    async def define_device_profile(
        self, profile: DeviceProfile, *, idempotency_key: str = ""
    ) -> DeviceProfile:
        """Create or replace a carrier's device profile (``ModelInAnotherProfile`` when
        another profile names one of its models)."""
        request = pb.DefineDeviceProfileRequest(
            device_profile=cp.device_profile(profile), idempotency_key=idempotency_key
        )
        return cp.device_profile_from_pb(await self.call(self._stub.DefineDeviceProfile, request))

    async def get_device_profile(self, carrier_id: str, profile_id: str) -> DeviceProfile:
        """One device profile, with its models."""
        request = pb.GetDeviceProfileRequest(name=cp.DEVICE_PROFILE.format(carrier_id, profile_id))
        return cp.device_profile_from_pb(await self.call(self._stub.GetDeviceProfile, request))

    async def list_device_profiles(self, carrier_id: str) -> list[DeviceProfile]:
        """The carrier's device profiles by id, every page of them."""
        found: list[DeviceProfile] = []
        token = ""
        while True:
            request = pb.ListDeviceProfilesRequest(
                parent=CARRIER.format(carrier_id), page_size=MAX_PAGE_SIZE, page_token=token
            )
            reply: pb.ListDeviceProfilesResponse = await self.call(
                self._stub.ListDeviceProfiles, request
            )
            found.extend(cp.device_profile_from_pb(p) for p in reply.device_profiles)
            token = reply.next_page_token
            if not token:
                return found

    async def delete_device_profile(
        self, carrier_id: str, profile_id: str, *, idempotency_key: str = ""
    ) -> DeviceProfile:
        """Remove a device profile (its models fall back to the default); returns it."""
        request = pb.DeleteDeviceProfileRequest(
            name=cp.DEVICE_PROFILE.format(carrier_id, profile_id), idempotency_key=idempotency_key
        )
        return cp.device_profile_from_pb(await self.call(self._stub.DeleteDeviceProfile, request))

    # ---- subscribers and their boxes

    async def create_subscriber(
        self,
        carrier_id: str,
        subscriber_id: str,
        *,
        display_name: str,
        region_code: str,
        service_end: datetime | None = None,
        max_streams: int = 0,
        contact_phone: str = "",
        contact_email: str = "",
        idempotency_key: str = "",
    ) -> Subscriber:
        """Create a carrier's subscriber (``max_streams`` 0: the service default)."""
        request = pb.CreateSubscriberRequest(
            parent=CARRIER.format(carrier_id),
            subscriber_id=subscriber_id,
            subscriber=pb.Subscriber(
                display_name=display_name,
                region_code=region_code,
                service_end=to_timestamp(service_end),
                max_streams=max_streams,
                contact_phone=contact_phone,
                contact_email=contact_email,
            ),
            idempotency_key=idempotency_key,
        )
        return convert.subscriber_from_pb(await self.call(self._stub.CreateSubscriber, request))

    async def get_subscriber(self, carrier_id: str, subscriber_id: str) -> Subscriber:
        """One subscriber."""
        request = pb.GetSubscriberRequest(name=SUBSCRIBER.format(carrier_id, subscriber_id))
        return convert.subscriber_from_pb(await self.call(self._stub.GetSubscriber, request))

    async def list_subscribers(
        self, carrier_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[Subscriber], str, int]:
        """A page of subscribers by id, the next page token ("" at the end) and the total."""
        request = pb.ListSubscribersRequest(
            parent=CARRIER.format(carrier_id), page_size=page_size, page_token=page_token
        )
        reply: pb.ListSubscribersResponse = await self.call(self._stub.ListSubscribers, request)
        subs = [convert.subscriber_from_pb(s) for s in reply.subscribers]
        return subs, reply.next_page_token, reply.total_size

    async def update_subscriber(
        self,
        carrier_id: str,
        subscriber_id: str,
        changes: SubscriberChanges,
        *,
        expected_version: int,
        idempotency_key: str = "",
    ) -> Subscriber:
        """Change the fields ``changes`` sets (None: unchanged) if the subscriber is still at
        ``expected_version`` (else ``VersionMismatch``)."""
        subscriber, paths = convert.changes_to_pb(changes)
        subscriber.name = SUBSCRIBER.format(carrier_id, subscriber_id)
        request = pb.UpdateSubscriberRequest(
            subscriber=subscriber,
            update_mask=field_mask_pb2.FieldMask(paths=paths),
            expected_version=expected_version,
            idempotency_key=idempotency_key,
        )
        return convert.subscriber_from_pb(await self.call(self._stub.UpdateSubscriber, request))

    async def set_subscriber_status(
        self,
        carrier_id: str,
        subscriber_id: str,
        status: SubscriberStatus,
        *,
        expected_version: int = 0,
        idempotency_key: str = "",
    ) -> Subscriber:
        """Suspend, reactivate or terminate a subscriber (``expected_version`` 0: unchecked)."""
        request = pb.SetSubscriberStatusRequest(
            name=SUBSCRIBER.format(carrier_id, subscriber_id),
            status=convert.SUB_STATUS_PB[status],
            expected_version=expected_version,
            idempotency_key=idempotency_key,
        )
        return convert.subscriber_from_pb(await self.call(self._stub.SetSubscriberStatus, request))

    async def bind_device(
        self,
        carrier_id: str,
        subscriber_id: str,
        mac: str,
        *,
        serial: str = "",
        model: str = "",
        idempotency_key: str = "",
    ) -> Device:
        """Bind a set-top box to a subscriber."""
        request = pb.BindDeviceRequest(
            parent=SUBSCRIBER.format(carrier_id, subscriber_id),
            mac=mac,
            serial=serial,
            model=model,
            idempotency_key=idempotency_key,
        )
        return convert.device_from_pb(await self.call(self._stub.BindDevice, request))

    async def activate_device(
        self, carrier_id: str, mac: str, *, idempotency_key: str = ""
    ) -> tuple[Device, str]:
        """Issue a box's device secret: the box and the secret (shown once; "" on a replay)."""
        request = pb.ActivateDeviceRequest(
            name=self._device(carrier_id, mac), idempotency_key=idempotency_key
        )
        reply: pb.ActivateDeviceResponse = await self.call(self._stub.ActivateDevice, request)
        return convert.device_from_pb(reply.device), reply.device_secret

    async def unbind_device(
        self, carrier_id: str, mac: str, *, idempotency_key: str = ""
    ) -> Device:
        """Unbind a box from its subscriber (the MAC is free again)."""
        request = pb.UnbindDeviceRequest(
            name=self._device(carrier_id, mac), idempotency_key=idempotency_key
        )
        return convert.device_from_pb(await self.call(self._stub.UnbindDevice, request))

    async def block_device(
        self, carrier_id: str, mac: str, *, blocked: bool = True, idempotency_key: str = ""
    ) -> Device:
        """Block a box (``blocked=False``: unblock it)."""
        request = pb.BlockDeviceRequest(
            name=self._device(carrier_id, mac), blocked=blocked, idempotency_key=idempotency_key
        )
        return convert.device_from_pb(await self.call(self._stub.BlockDevice, request))

    async def replace_device(
        self,
        carrier_id: str,
        old_mac: str,
        new_mac: str,
        *,
        serial: str = "",
        model: str = "",
        idempotency_key: str = "",
    ) -> Device:
        """Swap a subscriber's box for a new one: the new box, bound in the old one's place."""
        request = pb.ReplaceDeviceRequest(
            name=self._device(carrier_id, old_mac, "old_mac"),
            new_mac=new_mac,
            serial=serial,
            model=model,
            idempotency_key=idempotency_key,
        )
        return convert.device_from_pb(await self.call(self._stub.ReplaceDevice, request))

    async def entitle(
        self,
        carrier_id: str,
        subscriber_id: str,
        package_id: str,
        *,
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
        idempotency_key: str = "",
    ) -> Subscriber:
        """Sell a package to a subscriber for ``[valid_from, valid_until)`` (open: None)."""
        request = pb.EntitleRequest(
            name=SUBSCRIBER.format(carrier_id, subscriber_id),
            package_id=package_id,
            valid_from=to_timestamp(valid_from),
            valid_until=to_timestamp(valid_until),
            idempotency_key=idempotency_key,
        )
        return convert.subscriber_from_pb(await self.call(self._stub.Entitle, request))

    async def revoke_entitlement(
        self, carrier_id: str, subscriber_id: str, package_id: str, *, idempotency_key: str = ""
    ) -> Subscriber:
        """Take a package away from a subscriber."""
        request = pb.RevokeEntitlementRequest(
            name=ENTITLEMENT.format(carrier_id, subscriber_id, package_id),
            idempotency_key=idempotency_key,
        )
        return convert.subscriber_from_pb(await self.call(self._stub.RevokeEntitlement, request))

    async def list_entitlements(
        self, carrier_id: str, subscriber_id: str
    ) -> tuple[tuple[Entitlement, ...], int]:
        """The packages a subscriber holds, with their windows, and its version (every
        page read at that one version: a change between pages starts the reading over)."""
        parent = SUBSCRIBER.format(carrier_id, subscriber_id)
        held: list[Entitlement] = []
        token, version = "", None
        while True:
            request = pb.ListEntitlementsRequest(
                parent=parent, page_size=MAX_PAGE_SIZE, page_token=token
            )
            reply: pb.ListEntitlementsResponse = await self.call(
                self._stub.ListEntitlements, request
            )
            if version is not None and reply.subscriber_version != version:
                held, token, version = [], "", None
                continue
            version = reply.subscriber_version
            held.extend(convert.entitlement_from_pb(e) for e in reply.entitlements)
            token = reply.next_page_token
            if not token:
                return tuple(held), version

    async def import_subscribers(
        self, carrier_id: str, rows: Sequence[ImportRow], *, chunk_rows: int = 500
    ) -> ImportSummary:
        """Upsert ``rows`` in one streamed call of ``chunk_rows`` per message; every refused row
        comes back in the summary with its field and reason."""

        parent = CARRIER.format(carrier_id)

        async def chunks() -> AsyncIterator[pb.ImportSubscribersRequest]:
            for start in range(0, len(rows), chunk_rows):
                part = rows[start : start + chunk_rows]
                yield pb.ImportSubscribersRequest(
                    parent=parent, rows=[convert.import_row_to_pb(r) for r in part]
                )

        with self.mapped():
            summary: pb.ImportSummary = await self._stub.ImportSubscribers(
                chunks(), metadata=self.metadata
            )
        return convert.summary_from_pb(summary)

    async def list_audit(
        self, carrier_id: str, *, page_size: int = 0, page_token: str = "", after: str = ""
    ) -> tuple[list[AuditEntry], str]:
        """A page of the carrier's audit stream (carrier "": the platform's), oldest first,
        from the entry after ``after`` on, and the next page token (pass the same ``after``)."""
        request = pb.ListAuditRequest(
            parent=CARRIER.format(carrier_id) if carrier_id else "",
            page_size=page_size,
            page_token=page_token,
            after_entry_id=after,
        )
        reply: pb.ListAuditResponse = await self.call(self._stub.ListAudit, request)
        return [convert.audit_entry_from_pb(e) for e in reply.entries], reply.next_page_token

    # ---- the helpdesk

    async def device_events(
        self, mac: str, *, carrier_id: str = "-", limit: int = 0
    ) -> tuple[str, list[DeviceEvent], list[Lease]]:
        """A box's latest requests (newest first; ``limit`` 0: 50) and its subscriber's live
        leases, with the box's name; carrier ``-``: whichever carrier the key may read."""
        request = pb.ListDeviceEventsRequest(parent=self._device(carrier_id, mac), page_size=limit)
        reply: pb.ListDeviceEventsResponse = await self.call(self._stub.ListDeviceEvents, request)
        return (
            reply.device,
            [convert.device_event_from_pb(e) for e in reply.events],
            [convert.lease_from_pb(s) for s in reply.active_sessions],
        )

    async def count_subscribers(self) -> list[SubscriberCount]:
        """Subscribers by carrier and status (a carrier key: its own carrier's)."""
        request = pb.CountSubscribersRequest()
        reply: pb.CountSubscribersResponse = await self.call(self._stub.CountSubscribers, request)
        return [convert.subscriber_count_from_pb(c) for c in reply.counts]

    async def provisioning_errors(
        self, carrier_id: str = "", *, limit: int = 0
    ) -> list[ProvisioningError]:
        """The carrier's latest refused provisioning requests, newest first (carrier "":
        every carrier's, admin; ``limit`` 0: 50)."""
        request = pb.ListProvisioningErrorsRequest(
            parent=CARRIER.format(carrier_id) if carrier_id else "", page_size=limit
        )
        reply: pb.ListProvisioningErrorsResponse = await self.call(
            self._stub.ListProvisioningErrors, request
        )
        return [convert.provisioning_error_from_pb(e) for e in reply.errors]

    @staticmethod
    def _device(carrier_id: str, mac: str, field: str = "mac") -> str:
        """A box's name from a MAC in any notation (``InvalidField`` on ``field`` if malformed)."""
        return device_name(carrier_id, normalize_mac(mac, field))

    # ---- playback (the front door)

    async def device_login(self, mac: str, device_secret: str) -> LoginResult:
        """A box proves itself with its MAC and device secret (public: no key sent)."""
        request = pb.DeviceLoginRequest(mac=mac, device_secret=device_secret)
        return convert.login_from_pb(await self.call(self._stub.DeviceLogin, request, public=True))

    async def authorize(self, mac: str, channel_id: str) -> Decision:
        """May this box play this channel now (with the subscriber version to cache by)?"""
        request = pb.AuthorizeRequest(mac=mac, channel_id=channel_id)
        return convert.decision_from_pb(await self.call(self._stub.Authorize, request))

    async def effective_channels(
        self, carrier_id: str, subscriber_id: str
    ) -> tuple[tuple[str, ...], int]:
        """The channels the subscriber may watch now, and its version."""
        request = pb.EffectiveChannelsRequest(name=SUBSCRIBER.format(carrier_id, subscriber_id))
        reply: pb.EffectiveChannelsResponse = await self.call(self._stub.EffectiveChannels, request)
        return tuple(reply.channel_ids), reply.subscriber_version

    async def start_lease(self, mac: str, channel_id: str, *, idempotency_key: str = "") -> Lease:
        """Take the box's one stream: a new lease, replacing the one it held (if any)."""
        request = pb.StartSessionRequest(
            mac=mac, channel_id=channel_id, idempotency_key=idempotency_key
        )
        return convert.lease_from_pb(await self.call(self._stub.StartSession, request))

    async def heartbeat(self, mac: str, lease_id: str) -> Lease:
        """Keep the box's lease alive for another TTL."""
        request = pb.HeartbeatRequest(mac=mac, lease_id=lease_id)
        return convert.lease_from_pb(await self.call(self._stub.Heartbeat, request))

    async def end_lease(self, mac: str, lease_id: str, *, idempotency_key: str = "") -> None:
        """End the box's lease (its slot stays reserved for the box for the grace period)."""
        request = pb.EndSessionRequest(mac=mac, lease_id=lease_id, idempotency_key=idempotency_key)
        await self.call(self._stub.EndSession, request)
