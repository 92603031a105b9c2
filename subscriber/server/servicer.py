"""The ``SubscriberService`` servicer: proto <-> domain only; the harness maps errors.

Requests name resources (``carriers/{carrier}/subscribers/{subscriber}``); the
service takes ids, so names are parsed here with :mod:`subscriber.convert`'s
patterns. Lists held in memory are paged here; the subscriber and audit lists
are paged by the store's own cursor, wrapped in an opaque token bound to the query.
A refused provisioning request is recorded for the helpdesk (``records_refusals``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeAlias, TypeVar

import grpc
from google.protobuf.message import Message

from headend.rpc import principal
from headend.rpc.resources import decode_token, encode_token, page, page_size
from protos import subscriber_pb2 as pb
from protos import subscriber_pb2_grpc as pb_grpc
from subscriber import convert, domain
from subscriber.convert import CARRIER, ENTITLEMENT, SUBSCRIBER, device_ids
from subscriber.server.base import ServicerBase
from subscriber.server.helpdesk import HelpdeskServicer, records_refusals
from subscriber.server.profiles import ProfileServicer

M = TypeVar("M", bound=Message)
Context: TypeAlias = grpc.aio.ServicerContext


class SubscriberServicer(
    HelpdeskServicer, ProfileServicer, ServicerBase, pb_grpc.SubscriberServiceServicer
):
    """Proto <-> ``SubscriberService``; the helpdesk's RPCs are :class:`HelpdeskServicer`'s,
    the device profiles' :class:`ProfileServicer`'s."""

    # carriers and catalogue

    async def CreateCarrier(self, request: pb.CreateCarrierRequest, context: Context) -> pb.Carrier:
        async def run() -> pb.Carrier:
            return convert.carrier(
                await self._service.create_carrier(
                    principal(),
                    request.carrier_id,
                    request.carrier.display_name,
                    convert.NETWORK.get(request.carrier.network_type, ""),
                )
            )

        return await self._once("CreateCarrier", request, request.idempotency_key, pb.Carrier, run)

    async def GetCarrier(self, request: pb.GetCarrierRequest, context: Context) -> pb.Carrier:
        carrier_id = CARRIER.id(request.name)
        return convert.carrier(await self._service.get_carrier(principal(), carrier_id))

    async def ListCarriers(
        self, request: pb.ListCarriersRequest, context: Context
    ) -> pb.ListCarriersResponse:
        carriers, token = page(
            await self._service.list_carriers(principal()),
            key=lambda c: c.carrier_id,
            size=request.page_size,
            token=request.page_token,
            query="carriers",
        )
        return pb.ListCarriersResponse(
            carriers=[convert.carrier(c) for c in carriers], next_page_token=token
        )

    @records_refusals
    async def SetCarrierStatus(
        self, request: pb.SetCarrierStatusRequest, context: Context
    ) -> pb.Carrier:
        carrier_id = CARRIER.id(request.name)

        async def run() -> pb.Carrier:
            return convert.carrier(
                await self._service.set_carrier_status(
                    principal(),
                    carrier_id,
                    convert.status(request.status, convert.CARRIER_STATUS),
                )
            )

        return await self._once(
            "SetCarrierStatus", request, request.idempotency_key, pb.Carrier, run
        )

    async def DefinePackage(self, request: pb.DefinePackageRequest, context: Context) -> pb.Package:
        package = convert.package_from_pb(request.package, "package.name")

        async def run() -> pb.Package:
            return convert.package(await self._service.define_package(principal(), package))

        return await self._once("DefinePackage", request, request.idempotency_key, pb.Package, run)

    async def ListPackages(
        self, request: pb.ListPackagesRequest, context: Context
    ) -> pb.ListPackagesResponse:
        packages, token = page(
            await self._service.list_packages(principal()),
            key=lambda p: p.package_id,
            size=request.page_size,
            token=request.page_token,
            query="packages",
        )
        return pb.ListPackagesResponse(
            packages=[convert.package(p) for p in packages], next_page_token=token
        )

    # subscribers

    @records_refusals
    async def CreateSubscriber(
        self, request: pb.CreateSubscriberRequest, context: Context
    ) -> pb.Subscriber:
        carrier_id = CARRIER.id(request.parent, field="parent")
        new = request.subscriber

        async def run() -> pb.Subscriber:
            return convert.subscriber(
                await self._service.create_subscriber(
                    principal(),
                    carrier_id,
                    subscriber_id=request.subscriber_id,
                    display_name=new.display_name,
                    region_code=new.region_code,
                    service_end=convert.when(new, "service_end"),
                    max_streams=new.max_streams,
                    contact_phone=new.contact_phone,
                    contact_email=new.contact_email,
                )
            )

        return await self._once(
            "CreateSubscriber", request, request.idempotency_key, pb.Subscriber, run
        )

    async def GetSubscriber(
        self, request: pb.GetSubscriberRequest, context: Context
    ) -> pb.Subscriber:
        return convert.subscriber(
            await self._service.get_subscriber(principal(), *SUBSCRIBER.parse(request.name))
        )

    async def ListSubscribers(
        self, request: pb.ListSubscribersRequest, context: Context
    ) -> pb.ListSubscribersResponse:
        carrier_id = CARRIER.id(request.parent, field="parent")
        query = request.parent
        subs, after, total = await self._service.list_subscribers(
            principal(),
            carrier_id,
            limit=page_size(request.page_size),
            after=decode_token(request.page_token, query=query),
        )
        return pb.ListSubscribersResponse(
            subscribers=[convert.subscriber(s) for s in subs],
            next_page_token=encode_token(after, query=query),
            total_size=total,
        )

    @records_refusals
    async def UpdateSubscriber(
        self, request: pb.UpdateSubscriberRequest, context: Context
    ) -> pb.Subscriber:
        name = request.subscriber.name
        carrier_id, subscriber_id = SUBSCRIBER.parse(name, field="subscriber.name")
        changes = convert.changes(request)

        async def run() -> pb.Subscriber:
            return convert.subscriber(
                await self._service.update_subscriber(
                    principal(),
                    carrier_id,
                    subscriber_id,
                    expected_version=request.expected_version,
                    changes=changes,
                )
            )

        return await self._once(
            "UpdateSubscriber", request, request.idempotency_key, pb.Subscriber, run
        )

    @records_refusals
    async def SetSubscriberStatus(
        self, request: pb.SetSubscriberStatusRequest, context: Context
    ) -> pb.Subscriber:
        carrier_id, subscriber_id = SUBSCRIBER.parse(request.name)

        async def run() -> pb.Subscriber:
            return convert.subscriber(
                await self._service.set_subscriber_status(
                    principal(),
                    carrier_id,
                    subscriber_id,
                    status=convert.status(request.status, convert.SUB_STATUS),
                    expected_version=request.expected_version,
                )
            )

        return await self._once(
            "SetSubscriberStatus", request, request.idempotency_key, pb.Subscriber, run
        )

    # devices

    @records_refusals
    async def BindDevice(self, request: pb.BindDeviceRequest, context: Context) -> pb.Device:
        carrier_id, subscriber_id = SUBSCRIBER.parse(request.parent, field="parent")

        async def run() -> pb.Device:
            return convert.device(
                await self._service.bind_device(
                    principal(),
                    carrier_id,
                    subscriber_id,
                    mac=request.mac,
                    serial=request.serial,
                    model=request.model,
                )
            )

        return await self._once("BindDevice", request, request.idempotency_key, pb.Device, run)

    async def GetDevice(self, request: pb.GetDeviceRequest, context: Context) -> pb.Device:
        return convert.device(
            await self._service.get_device(principal(), *device_ids(request.name))
        )

    async def ListDevices(
        self, request: pb.ListDevicesRequest, context: Context
    ) -> pb.ListDevicesResponse:
        carrier_id, subscriber_id = SUBSCRIBER.parse(request.parent, field="parent")
        devices, token = page(
            await self._service.list_devices(principal(), carrier_id, subscriber_id),
            key=lambda d: d.mac,
            size=request.page_size,
            token=request.page_token,
            query=request.parent,
        )
        return pb.ListDevicesResponse(
            devices=[convert.device(d) for d in devices], next_page_token=token
        )

    @records_refusals
    async def ActivateDevice(
        self, request: pb.ActivateDeviceRequest, context: Context
    ) -> pb.ActivateDeviceResponse:
        first: list[pb.ActivateDeviceResponse] = []
        carrier_id, mac = device_ids(request.name)

        async def run() -> pb.ActivateDeviceResponse:
            device, secret = await self._service.activate_device(principal(), carrier_id, mac)
            first.append(
                pb.ActivateDeviceResponse(device=convert.device(device), device_secret=secret)
            )
            # Only the hash is ever stored: a replay gets the device, not the secret.
            return pb.ActivateDeviceResponse(device=convert.device(device))

        replay = await self._once(
            "ActivateDevice", request, request.idempotency_key, pb.ActivateDeviceResponse, run
        )
        return first[0] if first else replay

    @records_refusals
    async def UnbindDevice(self, request: pb.UnbindDeviceRequest, context: Context) -> pb.Device:
        carrier_id, mac = device_ids(request.name)

        async def run() -> pb.Device:
            return convert.device(await self._service.unbind_device(principal(), carrier_id, mac))

        return await self._once("UnbindDevice", request, request.idempotency_key, pb.Device, run)

    @records_refusals
    async def BlockDevice(self, request: pb.BlockDeviceRequest, context: Context) -> pb.Device:
        carrier_id, mac = device_ids(request.name)

        async def run() -> pb.Device:
            return convert.device(
                await self._service.block_device(
                    principal(), carrier_id, mac, blocked=request.blocked
                )
            )

        return await self._once("BlockDevice", request, request.idempotency_key, pb.Device, run)

    @records_refusals
    async def ReplaceDevice(self, request: pb.ReplaceDeviceRequest, context: Context) -> pb.Device:
        carrier_id, old_mac = device_ids(request.name)

        async def run() -> pb.Device:
            return convert.device(
                await self._service.replace_device(
                    principal(),
                    carrier_id,
                    old_mac=old_mac,
                    new_mac=request.new_mac,
                    serial=request.serial,
                    model=request.model,
                )
            )

        return await self._once("ReplaceDevice", request, request.idempotency_key, pb.Device, run)

    # entitlements

    @records_refusals
    async def Entitle(self, request: pb.EntitleRequest, context: Context) -> pb.Subscriber:
        carrier_id, subscriber_id = SUBSCRIBER.parse(request.name)

        async def run() -> pb.Subscriber:
            return convert.subscriber(
                await self._service.entitle(
                    principal(),
                    carrier_id,
                    subscriber_id,
                    package_id=request.package_id,
                    valid_from=convert.when(request, "valid_from"),
                    valid_until=convert.when(request, "valid_until"),
                )
            )

        return await self._once("Entitle", request, request.idempotency_key, pb.Subscriber, run)

    @records_refusals
    async def RevokeEntitlement(
        self, request: pb.RevokeEntitlementRequest, context: Context
    ) -> pb.Subscriber:
        carrier_id, subscriber_id, package_id = ENTITLEMENT.parse(request.name)

        async def run() -> pb.Subscriber:
            return convert.subscriber(
                await self._service.revoke_entitlement(
                    principal(), carrier_id, subscriber_id, package_id
                )
            )

        return await self._once(
            "RevokeEntitlement", request, request.idempotency_key, pb.Subscriber, run
        )

    async def ListEntitlements(
        self, request: pb.ListEntitlementsRequest, context: Context
    ) -> pb.ListEntitlementsResponse:
        sub = await self._service.list_entitlements(
            principal(), *SUBSCRIBER.parse(request.parent, field="parent")
        )
        held, token = page(
            sub.entitlements,
            key=lambda e: e.package_id,
            size=request.page_size,
            token=request.page_token,
            query=request.parent,
        )
        return pb.ListEntitlementsResponse(
            entitlements=[convert.entitlement(sub, e) for e in held],
            next_page_token=token,
            subscriber_version=sub.version,
        )

    async def EffectiveChannels(
        self, request: pb.EffectiveChannelsRequest, context: Context
    ) -> pb.EffectiveChannelsResponse:
        carrier_id, subscriber_id = SUBSCRIBER.parse(request.name)
        channels, version = await self._service.effective_channels(
            principal(), carrier_id, subscriber_id, convert.when(request, "at")
        )
        return pb.EffectiveChannelsResponse(channel_ids=channels, subscriber_version=version)

    # playback

    async def DeviceLogin(
        self, request: pb.DeviceLoginRequest, context: Context
    ) -> pb.DeviceLoginResponse:
        return convert.login(await self._service.device_login(request.mac, request.device_secret))

    async def Authorize(
        self, request: pb.AuthorizeRequest, context: Context
    ) -> pb.AuthorizeResponse:
        return convert.decision(
            await self._service.authorize(
                principal(), request.mac, request.channel_id, convert.when(request, "at")
            )
        )

    async def StartSession(self, request: pb.StartSessionRequest, context: Context) -> pb.Session:
        async def run() -> pb.Session:
            return convert.lease(
                await self._service.start_lease(principal(), request.mac, request.channel_id)
            )

        return await self._once("StartSession", request, request.idempotency_key, pb.Session, run)

    async def Heartbeat(self, request: pb.HeartbeatRequest, context: Context) -> pb.Session:
        return convert.lease(
            await self._service.heartbeat(principal(), request.mac, request.lease_id)
        )

    async def EndSession(
        self, request: pb.EndSessionRequest, context: Context
    ) -> pb.EndSessionResponse:
        async def run() -> pb.EndSessionResponse:
            await self._service.end_lease(principal(), request.mac, request.lease_id)
            return pb.EndSessionResponse()

        return await self._once(
            "EndSession", request, request.idempotency_key, pb.EndSessionResponse, run
        )

    # bulk import and audit

    async def ImportSubscribers(
        self, request_iterator: AsyncIterator[pb.ImportSubscribersRequest], context: Context
    ) -> pb.ImportSummary:
        async def chunks() -> AsyncIterator[tuple[str, list[domain.ImportRow | domain.RowError]]]:
            async for chunk in request_iterator:
                carrier_id = CARRIER.id(chunk.parent, field="parent")
                yield carrier_id, [convert.import_row(r) for r in chunk.rows]

        return convert.summary(await self._recorded_import(chunks()))

    async def ListAudit(
        self, request: pb.ListAuditRequest, context: Context
    ) -> pb.ListAuditResponse:
        # "" names the platform's catalogue stream.
        carrier_id = CARRIER.id(request.parent, field="parent") if request.parent else ""
        query = f"{request.parent} after {request.after_entry_id}"
        entries, after = await self._service.list_audit(
            principal(),
            carrier_id,
            limit=page_size(request.page_size),
            after=decode_token(request.page_token, query=query) or request.after_entry_id,
        )
        return pb.ListAuditResponse(
            entries=[convert.audit_entry(e) for e in entries],
            next_page_token=encode_token(after, query=query),
        )
