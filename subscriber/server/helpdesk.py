"""The helpdesk's RPCs (``ListDeviceEvents``, ``CountSubscribers``,
``ListProvisioningErrors``), and the recording of refused provisioning requests they list.

Each mutating RPC on a carrier's resources is wrapped with :func:`records_refusals`:
when it fails for a client error (the request was wrong for the carrier's data: invalid,
not found, already there, not allowed in that state, a lost race), the refusal is
recorded under the carrier its request names, with the error's reason as the caller got
it. Authentication and permission refusals, and failures of the platform itself, are
not: they are not the carrier's provisioning errors, and no one may fill another
carrier's record.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeAlias, TypeVar

import grpc
from google.protobuf.message import Message

from headend import errors
from headend.rpc import principal
from headend.rpc.resources import page_size
from headend.rpc.status import reason_code
from protos import subscriber_pb2 as pb
from subscriber import convert, domain
from subscriber.convert import CARRIER, device_ids, device_name
from subscriber.domain import ImportRow, ImportSummary, RowError
from subscriber.domain.helpdesk import DEVICE_EVENTS_KEPT, PROVISIONING_ERRORS_KEPT
from subscriber.errors import InvalidField
from subscriber.server.base import ServicerBase
from subscriber.service import SubscriberService

Context: TypeAlias = grpc.aio.ServicerContext
S = TypeVar("S", bound=ServicerBase)
Q = TypeVar("Q", bound=Message)
R = TypeVar("R", bound=Message)
# One streamed chunk of an import: its carrier and rows (or rows the wire could not hold).
ImportChunk: TypeAlias = tuple[str, Sequence[ImportRow | RowError]]

# The errors that are a carrier's provisioning errors (the caller's request was wrong).
RECORDED = (
    errors.InvalidArgument,
    errors.NotFound,
    errors.AlreadyExists,
    errors.FailedPrecondition,
    errors.Aborted,
    errors.ResourceExhausted,
)
_DEFAULT_PAGE = 50
# A name's collection segments, as the audit names their resources.
_SINGULAR = {
    "subscribers": "subscriber",
    "devices": "device",
    "entitlements": "entitlement",
    "deviceProfiles": "device_profile",
}


def target(request: Message) -> tuple[str, str]:
    """The carrier a provisioning request names and its subject (``subscriber/alice``,
    ``device/aa:bb:cc:dd:ee:ff``); ('', '') when it names no carrier."""
    name = getattr(request, "name", "") or getattr(request, "parent", "")
    if isinstance(request, pb.UpdateSubscriberRequest):
        name = request.subscriber.name
    elif isinstance(request, pb.DefineDeviceProfileRequest):
        name = request.device_profile.name
    parts = name.split("/")
    if len(parts) < 2 or parts[0] != "carriers":
        return "", ""
    try:
        carrier_id = domain.validate_carrier_id(parts[1])
    except InvalidField:
        return "", ""
    subject = []
    for collection, ident in zip(parts[2::2], parts[3::2], strict=False):
        kind = _SINGULAR.get(collection, collection)
        if kind == "device":
            try:
                ident = device_ids(name)[1]
            except errors.InvalidArgument:
                pass
        subject.append(f"{kind}/{ident}")
    # What a create or bind adds under the name.
    for field, kind in (("subscriber_id", "subscriber"), ("mac", "device")):
        if ident := getattr(request, field, ""):
            subject.append(f"{kind}/{ident}")
    return carrier_id, "/".join(subject) or f"carrier/{carrier_id}"


def records_refusals(
    method: Callable[[S, Q, Context], Awaitable[R]],
) -> Callable[[S, Q, Context], Awaitable[R]]:
    """Record a client error of this provisioning RPC (see the module) before it goes out."""
    rpc = method.__name__

    @functools.wraps(method)
    async def wrapper(self: S, request: Q, context: Context) -> R:
        try:
            return await method(self, request, context)
        except RECORDED as err:
            carrier_id, subject = target(request)
            if carrier_id:
                await _record(self._service, carrier_id, rpc, subject, err)
            raise

    return wrapper


async def _record(
    service: SubscriberService, carrier_id: str, rpc: str, subject: str, err: Exception
) -> None:
    """Record the refusal ``err`` of ``rpc`` on ``subject``, as the caller got it."""
    await service.record_refusal(
        principal(),
        carrier_id,
        rpc,
        subject=subject,
        reason=reason_code(type(err)),
        message=str(err),
    )


class HelpdeskServicer(ServicerBase):
    """The helpdesk's RPCs; mixed into ``SubscriberServicer``."""

    async def ListDeviceEvents(
        self, request: pb.ListDeviceEventsRequest, context: Context
    ) -> pb.ListDeviceEventsResponse:
        carrier_id, mac = device_ids(request.parent, field="parent")
        history = await self._service.device_history(
            principal(),
            carrier_id,
            mac,
            limit=page_size(request.page_size, default=_DEFAULT_PAGE, maximum=DEVICE_EVENTS_KEPT),
        )
        return pb.ListDeviceEventsResponse(
            device=device_name(history.device.carrier_id, history.device.mac),
            events=[convert.device_event(e) for e in history.events],
            active_sessions=[convert.lease(lease) for lease in history.leases],
        )

    async def CountSubscribers(
        self, request: pb.CountSubscribersRequest, context: Context
    ) -> pb.CountSubscribersResponse:
        counts = await self._service.count_subscribers(principal())
        return pb.CountSubscribersResponse(counts=[convert.subscriber_count(c) for c in counts])

    async def ListProvisioningErrors(
        self, request: pb.ListProvisioningErrorsRequest, context: Context
    ) -> pb.ListProvisioningErrorsResponse:
        carrier_id = CARRIER.id(request.parent, field="parent") if request.parent else ""
        found = await self._service.list_provisioning_errors(
            principal(),
            carrier_id,
            limit=page_size(
                request.page_size, default=_DEFAULT_PAGE, maximum=PROVISIONING_ERRORS_KEPT
            ),
        )
        return pb.ListProvisioningErrorsResponse(
            errors=[convert.provisioning_error(e) for e in found]
        )

    async def _recorded_import(self, chunks: AsyncIterator[ImportChunk]) -> ImportSummary:
        """``import_stream`` of ``chunks``, its failed rows or its refusal as a whole
        recorded under the carrier the first chunk names."""
        named: list[str] = []

        async def watched() -> AsyncIterator[ImportChunk]:
            async for carrier_id, rows in chunks:
                if not named:
                    named.append(carrier_id)
                yield carrier_id, rows

        try:
            summary = await self._service.import_stream(principal(), watched())
        except RECORDED as err:
            if named:
                await _record(self._service, named[0], "ImportSubscribers", "import", err)
            raise
        if named and summary.errors:
            await self._service.record_import_failures(principal(), named[0], summary.errors)
        return summary
