"""The ``SubscriberService`` servicer: proto <-> domain only; the harness maps errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from google.protobuf.message import Message

from headend.rpc import principal
from protos import subscriber_pb2 as pb
from protos import subscriber_pb2_grpc as pb_grpc
from subscriber import domain
from subscriber.server import convert
from subscriber.service import SubscriberService

M = TypeVar("M", bound=Message)


class SubscriberServicer(pb_grpc.SubscriberServiceServicer):
    """Proto <-> ``SubscriberService``."""

    def __init__(self, *, service: SubscriberService) -> None:
        self._service = service

    async def _once(
        self, method: str, request: Any, response_type: type[M], run: Callable[[], Awaitable[M]]
    ) -> M:
        async def go() -> bytes:
            return (await run()).SerializeToString()

        raw = await self._service.idempotent(
            principal(), request.idempotency_key, convert.fingerprint(method, request), go
        )
        return response_type.FromString(raw)

    # carriers and catalogue

    async def CreateCarrier(self, request: Any, context: Any) -> pb.Carrier:
        async def run() -> pb.Carrier:
            return convert.carrier(
                await self._service.create_carrier(
                    principal(),
                    request.carrier_id,
                    request.name,
                    convert.NETWORK.get(request.network_type, ""),
                )
            )

        return await self._once("CreateCarrier", request, pb.Carrier, run)

    async def GetCarrier(self, request: Any, context: Any) -> pb.Carrier:
        return convert.carrier(await self._service.get_carrier(principal(), request.carrier_id))

    async def ListCarriers(self, request: Any, context: Any) -> pb.ListCarriersResponse:
        carriers = await self._service.list_carriers(principal())
        return pb.ListCarriersResponse(carriers=[convert.carrier(c) for c in carriers])

    async def SetCarrierStatus(self, request: Any, context: Any) -> pb.Carrier:
        async def run() -> pb.Carrier:
            return convert.carrier(
                await self._service.set_carrier_status(
                    principal(),
                    request.carrier_id,
                    convert.status(request.status, convert.CARRIER_STATUS),
                )
            )

        return await self._once("SetCarrierStatus", request, pb.Carrier, run)

    async def DefinePackage(self, request: Any, context: Any) -> pb.Package:
        async def run() -> pb.Package:
            p = request.package
            package = domain.Package(p.package_id, p.name, tuple(p.channel_ids))
            return convert.package(await self._service.define_package(principal(), package))

        return await self._once("DefinePackage", request, pb.Package, run)

    async def ListPackages(self, request: Any, context: Any) -> pb.ListPackagesResponse:
        packages = await self._service.list_packages(principal())
        return pb.ListPackagesResponse(packages=[convert.package(p) for p in packages])

    # subscribers

    async def CreateSubscriber(self, request: Any, context: Any) -> pb.Subscriber:
        async def run() -> pb.Subscriber:
            return convert.subscriber(
                await self._service.create_subscriber(
                    principal(),
                    request.carrier_id,
                    subscriber_id=request.subscriber_id,
                    display_name=request.display_name,
                    region_code=request.region_code,
                    service_end=convert.when(request, "service_end"),
                    max_streams=request.max_streams,
                    contact_phone=request.contact_phone,
                    contact_email=request.contact_email,
                )
            )

        return await self._once("CreateSubscriber", request, pb.Subscriber, run)

    async def GetSubscriber(self, request: Any, context: Any) -> pb.Subscriber:
        return convert.subscriber(
            await self._service.get_subscriber(
                principal(), request.carrier_id, request.subscriber_id
            )
        )

    async def ListSubscribers(self, request: Any, context: Any) -> pb.ListSubscribersResponse:
        subs, token, total = await self._service.list_subscribers(
            principal(),
            request.carrier_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListSubscribersResponse(
            subscribers=[convert.subscriber(s) for s in subs],
            next_page_token=token,
            total_count=total,
        )

    async def UpdateSubscriber(self, request: Any, context: Any) -> pb.Subscriber:
        def opt(name: str) -> Any:
            return getattr(request, name) if request.HasField(name) else None

        changes = domain.SubscriberChanges(
            display_name=opt("display_name"),
            region_code=opt("region_code"),
            service_end=convert.when(request, "service_end"),
            clear_service_end=request.clear_service_end,
            max_streams=opt("max_streams"),
            contact_phone=opt("contact_phone"),
            contact_email=opt("contact_email"),
        )

        async def run() -> pb.Subscriber:
            return convert.subscriber(
                await self._service.update_subscriber(
                    principal(),
                    request.carrier_id,
                    request.subscriber_id,
                    expected_version=request.expected_version,
                    changes=changes,
                )
            )

        return await self._once("UpdateSubscriber", request, pb.Subscriber, run)

    async def SetSubscriberStatus(self, request: Any, context: Any) -> pb.Subscriber:
        async def run() -> pb.Subscriber:
            return convert.subscriber(
                await self._service.set_subscriber_status(
                    principal(),
                    request.carrier_id,
                    request.subscriber_id,
                    status=convert.status(request.status, convert.SUB_STATUS),
                    expected_version=request.expected_version,
                )
            )

        return await self._once("SetSubscriberStatus", request, pb.Subscriber, run)

    # devices

    async def BindDevice(self, request: Any, context: Any) -> pb.Device:
        async def run() -> pb.Device:
            return convert.device(
                await self._service.bind_device(
                    principal(),
                    request.carrier_id,
                    request.subscriber_id,
                    mac=request.mac,
                    serial=request.serial,
                    model=request.model,
                )
            )

        return await self._once("BindDevice", request, pb.Device, run)

    async def GetDevice(self, request: Any, context: Any) -> pb.Device:
        return convert.device(
            await self._service.get_device(principal(), request.carrier_id, request.mac)
        )

    async def ListDevices(self, request: Any, context: Any) -> pb.ListDevicesResponse:
        devices = await self._service.list_devices(
            principal(), request.carrier_id, request.subscriber_id
        )
        return pb.ListDevicesResponse(devices=[convert.device(d) for d in devices])

    async def ActivateDevice(self, request: Any, context: Any) -> pb.ActivateDeviceResponse:
        first: list[pb.ActivateDeviceResponse] = []

        async def run() -> pb.ActivateDeviceResponse:
            device, secret = await self._service.activate_device(
                principal(), request.carrier_id, request.mac
            )
            first.append(
                pb.ActivateDeviceResponse(device=convert.device(device), device_secret=secret)
            )
            # Only the hash is ever stored: a replay gets the device, not the secret.
            return pb.ActivateDeviceResponse(device=convert.device(device))

        replay = await self._once("ActivateDevice", request, pb.ActivateDeviceResponse, run)
        return first[0] if first else replay

    async def UnbindDevice(self, request: Any, context: Any) -> pb.Device:
        async def run() -> pb.Device:
            return convert.device(
                await self._service.unbind_device(principal(), request.carrier_id, request.mac)
            )

        return await self._once("UnbindDevice", request, pb.Device, run)

    async def BlockDevice(self, request: Any, context: Any) -> pb.Device:
        async def run() -> pb.Device:
            return convert.device(
                await self._service.block_device(
                    principal(), request.carrier_id, request.mac, blocked=request.blocked
                )
            )

        return await self._once("BlockDevice", request, pb.Device, run)

    async def ReplaceDevice(self, request: Any, context: Any) -> pb.Device:
        async def run() -> pb.Device:
            return convert.device(
                await self._service.replace_device(
                    principal(),
                    request.carrier_id,
                    old_mac=request.old_mac,
                    new_mac=request.new_mac,
                    serial=request.serial,
                    model=request.model,
                )
            )

        return await self._once("ReplaceDevice", request, pb.Device, run)

    # entitlements

    async def Entitle(self, request: Any, context: Any) -> pb.Subscriber:
        async def run() -> pb.Subscriber:
            return convert.subscriber(
                await self._service.entitle(
                    principal(),
                    request.carrier_id,
                    request.subscriber_id,
                    package_id=request.package_id,
                    valid_from=convert.when(request, "valid_from"),
                    valid_until=convert.when(request, "valid_until"),
                )
            )

        return await self._once("Entitle", request, pb.Subscriber, run)

    async def RevokeEntitlement(self, request: Any, context: Any) -> pb.Subscriber:
        async def run() -> pb.Subscriber:
            return convert.subscriber(
                await self._service.revoke_entitlement(
                    principal(), request.carrier_id, request.subscriber_id, request.package_id
                )
            )

        return await self._once("RevokeEntitlement", request, pb.Subscriber, run)

    async def ListEntitlements(self, request: Any, context: Any) -> pb.ListEntitlementsResponse:
        sub = await self._service.list_entitlements(
            principal(), request.carrier_id, request.subscriber_id
        )
        return pb.ListEntitlementsResponse(
            entitlements=[
                pb.Entitlement(
                    subscriber_id=sub.subscriber_id,
                    package_id=e.package_id,
                    valid_from=convert.ts(e.valid_from),
                    valid_until=convert.ts(e.valid_until),
                )
                for e in sub.entitlements
            ],
            subscriber_version=sub.version,
        )

    async def EffectiveChannels(self, request: Any, context: Any) -> pb.EffectiveChannelsResponse:
        channels, version = await self._service.effective_channels(
            principal(), request.carrier_id, request.subscriber_id, convert.when(request, "at")
        )
        return pb.EffectiveChannelsResponse(channel_ids=channels, subscriber_version=version)

    # playback

    async def DeviceLogin(self, request: Any, context: Any) -> pb.DeviceLoginResponse:
        login = await self._service.device_login(request.mac, request.device_secret)
        sub = login.state.subscriber
        return pb.DeviceLoginResponse(
            carrier_id=sub.carrier_id,
            subscriber_id=sub.subscriber_id,
            region_code=sub.region_code,
            subscriber_version=sub.version,
            status=convert.SUB_STATUS_PB[sub.status],
            mac=login.state.device.mac,
            channel_ids=login.channel_ids,
            deny_reason=convert.deny(login.deny_reason),
        )

    async def Authorize(self, request: Any, context: Any) -> pb.AuthorizeResponse:
        decision = await self._service.authorize(
            principal(), request.mac, request.channel_id, convert.when(request, "at")
        )
        return pb.AuthorizeResponse(
            allowed=decision.allowed,
            reason=convert.deny(decision.reason),
            subscriber_version=decision.subscriber_version,
            carrier_id=decision.carrier_id,
            subscriber_id=decision.subscriber_id,
        )

    async def StartSession(self, request: Any, context: Any) -> pb.Session:
        async def run() -> pb.Session:
            return convert.session(
                await self._service.start_session(principal(), request.mac, request.channel_id)
            )

        return await self._once("StartSession", request, pb.Session, run)

    async def Heartbeat(self, request: Any, context: Any) -> pb.Session:
        return convert.session(
            await self._service.heartbeat(principal(), request.mac, request.session_id)
        )

    async def EndSession(self, request: Any, context: Any) -> pb.EndSessionResponse:
        async def run() -> pb.EndSessionResponse:
            await self._service.end_session(principal(), request.mac, request.session_id)
            return pb.EndSessionResponse()

        return await self._once("EndSession", request, pb.EndSessionResponse, run)

    # bulk import and audit

    async def ImportSubscribers(
        self, request_iterator: AsyncIterator[pb.ImportChunk], context: Any
    ) -> pb.ImportSummary:
        async def chunks() -> AsyncIterator[tuple[str, list[domain.ImportRow | domain.RowError]]]:
            async for chunk in request_iterator:
                yield chunk.carrier_id, [convert.import_row(r) for r in chunk.rows]

        summary = await self._service.import_stream(principal(), chunks())
        return pb.ImportSummary(
            rows=summary.rows,
            created=summary.created,
            updated=summary.updated,
            unchanged=summary.unchanged,
            failed=len(summary.errors),
            errors=[pb.RowError(row=e.row, field=e.field, error=e.error) for e in summary.errors],
        )

    async def ListAudit(self, request: Any, context: Any) -> pb.ListAuditResponse:
        entries, token = await self._service.list_audit(
            principal(),
            request.carrier_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListAuditResponse(
            entries=[
                pb.AuditEntry(
                    entry_id=e.entry_id,
                    time=convert.ts(e.time),
                    principal=e.principal,
                    rpc=e.rpc,
                    subject=e.subject,
                    before_json=e.before_json,
                    after_json=e.after_json,
                )
                for e in entries
            ],
            next_page_token=token,
        )
