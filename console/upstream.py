"""The services, as the console calls them: generated stubs on one channel per address,
each call carrying the logged-in operator's own key.

So the services decide what an operator sees and may change (roles, tenants, validation)
exactly as for any gRPC caller; the console holds no such rule. A refusal becomes
:class:`ServiceRefused` carrying the REST face's problem for it
(:func:`headend.rest.problems.from_rpc_error`: the platform's one gRPC status → HTTP
mapping), which the app renders as an error page or JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import grpc

from console.settings import ConsoleSettings
from headend import errors, logs
from headend.rest.problems import Problem, from_rpc_error
from headend.rpc import bearer, client_channel
from protos import (
    alerts_pb2_grpc,
    cdn_pb2_grpc,
    epg_pb2_grpc,
    keys_pb2_grpc,
    reports_pb2_grpc,
    subscriber_pb2_grpc,
    transcode_pb2_grpc,
)

M = TypeVar("M")
# How many pages of a list the console reads at most (1,000 items each).
MAX_PAGES = 20
PAGE_SIZE = 1000


class ConsoleError(errors.HeadendError):
    """Raised for any refusal the console answers with an error page or JSON."""


class ServiceRefused(ConsoleError):
    """Raised when a service refused a call the console made for a page or an action."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


class Services:
    """Every service's stub, over channels opened once for the process."""

    def __init__(self, channels: Mapping[str, grpc.aio.Channel], timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self.keys = keys_pb2_grpc.KeyServiceStub(channels["SUBSCRIBER_TARGET"])
        self.subscribers = subscriber_pb2_grpc.SubscriberServiceStub(channels["SUBSCRIBER_TARGET"])
        self.reports = reports_pb2_grpc.ViewingReportServiceStub(channels["SUBSCRIBER_TARGET"])
        self.epg = epg_pb2_grpc.EpgServiceStub(channels["EPG_TARGET"])
        self.alerts = alerts_pb2_grpc.AlertServiceStub(channels["EPG_TARGET"])
        self.transcode = transcode_pb2_grpc.TranscodeServiceStub(channels["TRANSCODE_TARGET"])
        self.cdn = cdn_pb2_grpc.CdnControlServiceStub(channels["CDN_TARGET"])

    async def call(
        self, rpc: Callable[..., Awaitable[M]], request: Any, api_key: str, *, request_id: str = ""
    ) -> M:
        """One unary call with the operator's key (and the page request's id, which the
        service logs with its own lines).

        Raises ``ServiceRefused`` with the problem the service's status maps to."""
        metadata = bearer(api_key)
        if request_id:
            metadata += ((logs.REQUEST_ID_HEADER, request_id),)
        try:
            return await rpc(request, metadata=metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as err:
            raise ServiceRefused(from_rpc_error(err)) from err


async def open_services(settings: ConsoleSettings, opened: AsyncExitStack) -> Services:
    """Channels to every address in ``settings`` (closed with ``opened``), and their stubs."""
    channels: dict[str, grpc.aio.Channel] = {}
    for variable, target in settings.targets:
        channel = client_channel(target, tls=settings.grpc_tls)
        opened.push_async_callback(channel.close)
        channels[variable] = channel
    return Services(channels, settings.timeout_seconds)
