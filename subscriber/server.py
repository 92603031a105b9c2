"""gRPC ``SubscriberService``: proto <-> domain only; the harness maps errors to status codes.

``DeviceLogin`` is public (the box's MAC and device secret are its
credential); every other method needs a bearer API key. ``KeyService`` is
mounted beside it so the admin can issue carrier keys over gRPC.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from redis.asyncio import Redis

from headend.auth import KeyStore
from headend.keys_service import key_service
from headend.rpc import RpcServer, ServiceSpec, principal, run_service, start_server
from protos import subscriber_pb2 as pb
from protos import subscriber_pb2_grpc as pb_grpc
from subscriber import domain
from subscriber.errors import InvalidField
from subscriber.service import Clock, SubscriberService, utc_now
from subscriber.settings import SubscriberSettings
from subscriber.store import SubscriberStore

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SubscriberService"].full_name
PUBLIC_METHODS = frozenset({"DeviceLogin"})
log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)

_NETWORK = {pb.TELECOM: "telecom", pb.MOBILE: "mobile", pb.CABLE: "cable"}
_NETWORK_PB = {v: k for k, v in _NETWORK.items()}
_CARRIER_STATUS = {pb.CARRIER_ACTIVE: "active", pb.CARRIER_SUSPENDED: "suspended"}
_CARRIER_STATUS_PB = {v: k for k, v in _CARRIER_STATUS.items()}
_SUB_STATUS = {pb.ACTIVE: "active", pb.SUSPENDED: "suspended", pb.TERMINATED: "terminated"}
_SUB_STATUS_PB = {v: k for k, v in _SUB_STATUS.items()}
_DEVICE_STATUS_PB = {
    "bound": pb.BOUND,
    "activated": pb.ACTIVATED,
    "blocked": pb.BLOCKED,
    "unbound": pb.UNBOUND,
}


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _when(message: Message, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    stamp: Timestamp = getattr(message, name)
    return stamp.ToDatetime(tzinfo=UTC)


def _deny(reason: domain.DenyReason | None) -> Any:
    return pb.DENY_REASON_UNSPECIFIED if reason is None else pb.DenyReason.Value(reason.name)


def _carrier(c: domain.Carrier) -> pb.Carrier:
    return pb.Carrier(
        carrier_id=c.carrier_id,
        name=c.name,
        network_type=_NETWORK_PB[c.network_type],
        status=_CARRIER_STATUS_PB[c.status],
        created_at=_ts(c.created_at),
    )


def _package(p: domain.Package) -> pb.Package:
    return pb.Package(package_id=p.package_id, name=p.name, channel_ids=list(p.channel_ids))


def _subscriber(s: domain.Subscriber) -> pb.Subscriber:
    return pb.Subscriber(
        carrier_id=s.carrier_id,
        subscriber_id=s.subscriber_id,
        display_name=s.display_name,
        region_code=s.region_code,
        status=_SUB_STATUS_PB[s.status],
        service_end=_ts(s.service_end),
        max_streams=s.max_streams,
        contact_phone=s.contact_phone,
        contact_email=s.contact_email,
        version=s.version,
        created_at=_ts(s.created_at),
        updated_at=_ts(s.updated_at),
    )


def _device(d: domain.Device) -> pb.Device:
    return pb.Device(
        carrier_id=d.carrier_id,
        mac=d.mac,
        subscriber_id=d.subscriber_id,
        serial=d.serial,
        model=d.model,
        status=_DEVICE_STATUS_PB[d.status],
        bound_at=_ts(d.bound_at),
        activated_at=_ts(d.activated_at),
    )


def _session(s: domain.Session) -> pb.Session:
    return pb.Session(
        session_id=s.session_id,
        mac=s.mac,
        channel_id=s.channel_id,
        expires_at=_ts(s.expires_at),
        reused=s.reused,
        active_sessions=s.active_sessions,
        max_streams=s.max_streams,
    )


def _import_row(row: pb.ImportRow) -> domain.ImportRow:
    return domain.ImportRow(
        row=row.row,
        subscriber_id=row.subscriber_id,
        display_name=row.display_name,
        region_code=row.region_code,
        status=_SUB_STATUS.get(row.status, ""),
        service_end=_when(row, "service_end"),
        max_streams=row.max_streams,
        contact_phone=row.contact_phone,
        contact_email=row.contact_email,
        mac=row.mac,
        serial=row.serial,
        model=row.model,
        package_ids=tuple(row.package_ids),
        entitled_from=_when(row, "entitled_from"),
        entitled_until=_when(row, "entitled_until"),
    )


def _status(value: int, table: Mapping[Any, str]) -> str:
    if value not in table:
        raise InvalidField("status", "unspecified or unknown status")
    return table[value]


def _fingerprint(method: str, request: Message) -> str:
    """What makes two requests 'the same' for idempotency: method and every field but the key."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("idempotency_key")
    body = copy.SerializeToString(deterministic=True)
    return hashlib.sha256(method.encode() + b"\0" + body).hexdigest()


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
            principal(), request.idempotency_key, _fingerprint(method, request), go
        )
        return response_type.FromString(raw)

    # carriers and catalogue

    async def CreateCarrier(self, request: Any, context: Any) -> pb.Carrier:
        async def run() -> pb.Carrier:
            return _carrier(
                await self._service.create_carrier(
                    principal(),
                    request.carrier_id,
                    request.name,
                    _NETWORK.get(request.network_type, ""),
                )
            )

        return await self._once("CreateCarrier", request, pb.Carrier, run)

    async def GetCarrier(self, request: Any, context: Any) -> pb.Carrier:
        return _carrier(await self._service.get_carrier(principal(), request.carrier_id))

    async def ListCarriers(self, request: Any, context: Any) -> pb.ListCarriersResponse:
        carriers = await self._service.list_carriers(principal())
        return pb.ListCarriersResponse(carriers=[_carrier(c) for c in carriers])

    async def SetCarrierStatus(self, request: Any, context: Any) -> pb.Carrier:
        async def run() -> pb.Carrier:
            return _carrier(
                await self._service.set_carrier_status(
                    principal(), request.carrier_id, _status(request.status, _CARRIER_STATUS)
                )
            )

        return await self._once("SetCarrierStatus", request, pb.Carrier, run)

    async def DefinePackage(self, request: Any, context: Any) -> pb.Package:
        async def run() -> pb.Package:
            p = request.package
            package = domain.Package(p.package_id, p.name, tuple(p.channel_ids))
            return _package(await self._service.define_package(principal(), package))

        return await self._once("DefinePackage", request, pb.Package, run)

    async def ListPackages(self, request: Any, context: Any) -> pb.ListPackagesResponse:
        packages = await self._service.list_packages(principal())
        return pb.ListPackagesResponse(packages=[_package(p) for p in packages])

    # subscribers

    async def CreateSubscriber(self, request: Any, context: Any) -> pb.Subscriber:
        async def run() -> pb.Subscriber:
            return _subscriber(
                await self._service.create_subscriber(
                    principal(),
                    request.carrier_id,
                    subscriber_id=request.subscriber_id,
                    display_name=request.display_name,
                    region_code=request.region_code,
                    service_end=_when(request, "service_end"),
                    max_streams=request.max_streams,
                    contact_phone=request.contact_phone,
                    contact_email=request.contact_email,
                )
            )

        return await self._once("CreateSubscriber", request, pb.Subscriber, run)

    async def GetSubscriber(self, request: Any, context: Any) -> pb.Subscriber:
        return _subscriber(
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
            subscribers=[_subscriber(s) for s in subs], next_page_token=token, total_count=total
        )

    async def UpdateSubscriber(self, request: Any, context: Any) -> pb.Subscriber:
        def opt(name: str) -> Any:
            return getattr(request, name) if request.HasField(name) else None

        changes = domain.SubscriberChanges(
            display_name=opt("display_name"),
            region_code=opt("region_code"),
            service_end=_when(request, "service_end"),
            clear_service_end=request.clear_service_end,
            max_streams=opt("max_streams"),
            contact_phone=opt("contact_phone"),
            contact_email=opt("contact_email"),
        )

        async def run() -> pb.Subscriber:
            return _subscriber(
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
            return _subscriber(
                await self._service.set_subscriber_status(
                    principal(),
                    request.carrier_id,
                    request.subscriber_id,
                    status=_status(request.status, _SUB_STATUS),
                    expected_version=request.expected_version,
                )
            )

        return await self._once("SetSubscriberStatus", request, pb.Subscriber, run)

    # devices

    async def BindDevice(self, request: Any, context: Any) -> pb.Device:
        async def run() -> pb.Device:
            return _device(
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
        return _device(await self._service.get_device(principal(), request.carrier_id, request.mac))

    async def ListDevices(self, request: Any, context: Any) -> pb.ListDevicesResponse:
        devices = await self._service.list_devices(
            principal(), request.carrier_id, request.subscriber_id
        )
        return pb.ListDevicesResponse(devices=[_device(d) for d in devices])

    async def ActivateDevice(self, request: Any, context: Any) -> pb.ActivateDeviceResponse:
        first: list[pb.ActivateDeviceResponse] = []

        async def run() -> pb.ActivateDeviceResponse:
            device, secret = await self._service.activate_device(
                principal(), request.carrier_id, request.mac
            )
            first.append(pb.ActivateDeviceResponse(device=_device(device), device_secret=secret))
            # Only the hash is ever stored: a replay gets the device, not the secret.
            return pb.ActivateDeviceResponse(device=_device(device))

        replay = await self._once("ActivateDevice", request, pb.ActivateDeviceResponse, run)
        return first[0] if first else replay

    async def UnbindDevice(self, request: Any, context: Any) -> pb.Device:
        async def run() -> pb.Device:
            return _device(
                await self._service.unbind_device(principal(), request.carrier_id, request.mac)
            )

        return await self._once("UnbindDevice", request, pb.Device, run)

    async def BlockDevice(self, request: Any, context: Any) -> pb.Device:
        async def run() -> pb.Device:
            return _device(
                await self._service.block_device(
                    principal(), request.carrier_id, request.mac, blocked=request.blocked
                )
            )

        return await self._once("BlockDevice", request, pb.Device, run)

    async def ReplaceDevice(self, request: Any, context: Any) -> pb.Device:
        async def run() -> pb.Device:
            return _device(
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
            return _subscriber(
                await self._service.entitle(
                    principal(),
                    request.carrier_id,
                    request.subscriber_id,
                    package_id=request.package_id,
                    valid_from=_when(request, "valid_from"),
                    valid_until=_when(request, "valid_until"),
                )
            )

        return await self._once("Entitle", request, pb.Subscriber, run)

    async def RevokeEntitlement(self, request: Any, context: Any) -> pb.Subscriber:
        async def run() -> pb.Subscriber:
            return _subscriber(
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
                    valid_from=_ts(e.valid_from),
                    valid_until=_ts(e.valid_until),
                )
                for e in sub.entitlements
            ],
            subscriber_version=sub.version,
        )

    async def EffectiveChannels(self, request: Any, context: Any) -> pb.EffectiveChannelsResponse:
        channels, version = await self._service.effective_channels(
            principal(), request.carrier_id, request.subscriber_id, _when(request, "at")
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
            status=_SUB_STATUS_PB[sub.status],
            mac=login.state.device.mac,
            channel_ids=login.channel_ids,
            deny_reason=_deny(login.deny_reason),
        )

    async def Authorize(self, request: Any, context: Any) -> pb.AuthorizeResponse:
        decision = await self._service.authorize(
            principal(), request.mac, request.channel_id, _when(request, "at")
        )
        return pb.AuthorizeResponse(
            allowed=decision.allowed,
            reason=_deny(decision.reason),
            subscriber_version=decision.subscriber_version,
            carrier_id=decision.carrier_id,
            subscriber_id=decision.subscriber_id,
        )

    async def StartSession(self, request: Any, context: Any) -> pb.Session:
        async def run() -> pb.Session:
            return _session(
                await self._service.start_session(principal(), request.mac, request.channel_id)
            )

        return await self._once("StartSession", request, pb.Session, run)

    async def Heartbeat(self, request: Any, context: Any) -> pb.Session:
        return _session(await self._service.heartbeat(principal(), request.mac, request.session_id))

    async def EndSession(self, request: Any, context: Any) -> pb.EndSessionResponse:
        async def run() -> pb.EndSessionResponse:
            await self._service.end_session(principal(), request.mac, request.session_id)
            return pb.EndSessionResponse()

        return await self._once("EndSession", request, pb.EndSessionResponse, run)

    # bulk import and audit

    async def ImportSubscribers(
        self, request_iterator: AsyncIterator[pb.ImportChunk], context: Any
    ) -> pb.ImportSummary:
        async def chunks() -> AsyncIterator[tuple[str, list[domain.ImportRow]]]:
            async for chunk in request_iterator:
                yield chunk.carrier_id, [_import_row(r) for r in chunk.rows]

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
                    time=_ts(e.time),
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


def subscriber_service(service: SubscriberService) -> ServiceSpec:
    """The ``ServiceSpec`` mounting ``SubscriberService`` (``DeviceLogin`` public)."""
    servicer = SubscriberServicer(service=service)
    return ServiceSpec(
        SERVICE_NAME,
        lambda server: pb_grpc.add_SubscriberServiceServicer_to_server(servicer, server),
        public_methods=PUBLIC_METHODS,
    )


async def create_server(
    settings: SubscriberSettings, *, redis: Redis, keys: KeyStore, clock: Clock = utc_now
) -> tuple[RpcServer, int]:
    """Start ``SubscriberService`` and ``KeyService`` on the harness; returns server and port."""
    store = SubscriberStore(redis, audit_maxlen=settings.audit_maxlen)
    service = SubscriberService(store=store, settings=settings, clock=clock)
    return await start_server(
        settings.rpc,
        services=[subscriber_service(service), key_service(keys)],
        authenticator=keys,
    )


def main() -> None:
    """``python -m subscriber``: serve until SIGTERM/SIGINT (needs ``REDIS_URL``)."""
    run_service(
        "subscriber",
        SubscriberSettings.from_env,
        lambda settings, redis: create_server(settings, redis=redis, keys=KeyStore(redis)),
    )
