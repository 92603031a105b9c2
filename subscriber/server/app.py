"""Mounting ``SubscriberService`` (with ``KeyService`` and ``ViewingReportService``) on the
gRPC harness, and ``main()``."""

from __future__ import annotations

from redis.asyncio import Redis

from epg.owners import ChannelOwners
from headend.auth import KeyStore
from headend.clock import utc_now
from headend.keys_service import key_service
from headend.metrics import RpcMetrics
from headend.rpc import RpcServer, ServiceSpec, run_service, start_server
from protos import subscriber_pb2 as pb
from protos import subscriber_pb2_grpc as pb_grpc
from subscriber.metrics import SubscriberMetrics
from subscriber.reports.server import viewing_service
from subscriber.reports.service import ViewingMetrics, ViewingReports
from subscriber.reports.store import ViewingStore
from subscriber.server.servicer import SubscriberServicer
from subscriber.service import Clock, SubscriberService
from subscriber.settings import SubscriberSettings
from subscriber.store import SubscriberStore

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SubscriberService"].full_name
PUBLIC_METHODS = frozenset({"DeviceLogin"})


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
    """Start ``SubscriberService``, ``KeyService`` and ``ViewingReportService`` (with its
    expiry sweep, asking the EPG at ``settings.owners`` which channels a broadcaster owns)
    on the harness; returns server and port."""
    viewing = ViewingStore(
        redis, retention_days=settings.reports.retention_days, log_days=settings.reports.log_days
    )
    store = SubscriberStore(
        redis,
        audit_maxlen=settings.audit_maxlen,
        durability=settings.redis.durability,
        viewing=viewing,
    )
    # The service's own metrics go out on the gRPC server's endpoint.
    metrics = RpcMetrics()
    service = SubscriberService(
        store=store, settings=settings, clock=clock, metrics=SubscriberMetrics(metrics.registry)
    )
    owners = ChannelOwners(settings.owners)
    reports = ViewingReports(store=viewing, settings=settings.reports, owners=owners, clock=clock)
    return await start_server(
        settings.rpc,
        services=[subscriber_service(service), key_service(keys), viewing_service(reports)],
        authenticator=keys,
        metrics=metrics,
        components=[owners, reports.sweeping(ViewingMetrics(metrics.registry))],
    )


def main() -> None:
    """``python -m subscriber``: serve until SIGTERM/SIGINT (needs ``REDIS_URL``)."""
    run_service(
        "subscriber",
        SubscriberSettings.from_env,
        lambda settings, redis: create_server(settings, redis=redis, keys=KeyStore(redis)),
    )
