"""gRPC ``AlertService``, mounted by the EPG server: proto <-> values and paging only."""

from __future__ import annotations

from typing import TypeAlias

import grpc

from epg.alerts import convert
from epg.alerts.service import AlertService, newest_first
from headend.rpc import ServiceSpec, caller_key, principal
from headend.rpc.resources import page
from protos import alerts_pb2 as pb
from protos import alerts_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AlertService"].full_name
Context: TypeAlias = grpc.aio.ServicerContext


class AlertServicer(pb_grpc.AlertServiceServicer):
    """Proto <-> ``AlertService``."""

    def __init__(self, *, alerts: AlertService) -> None:
        self._alerts = alerts

    async def IssueAlert(self, request: pb.IssueAlertRequest, context: Context) -> pb.Alert:
        caller = principal()
        self._alerts.require_issuer(caller)
        alert = await self._alerts.issue(
            caller,
            convert.alert_from_pb(request.alert, request.alert_id),
            api_key=caller_key(),
            validate_only=request.validate_only,
        )
        return convert.alert_to_pb(alert)

    async def ConfirmAlert(self, request: pb.ConfirmAlertRequest, context: Context) -> pb.Alert:
        alert = await self._alerts.confirm(
            principal(), convert.alert_id(request.name), api_key=caller_key()
        )
        return convert.alert_to_pb(alert)

    async def CancelAlert(self, request: pb.CancelAlertRequest, context: Context) -> pb.Alert:
        alert = await self._alerts.cancel(
            principal(),
            convert.alert_id(request.name),
            api_key=caller_key(),
            reason=request.reason,
        )
        return convert.alert_to_pb(alert)

    async def GetAlert(self, request: pb.GetAlertRequest, context: Context) -> pb.Alert:
        alert = await self._alerts.get(principal(), convert.alert_id(request.name))
        return convert.alert_to_pb(alert)

    async def ListAlerts(
        self, request: pb.ListAlertsRequest, context: Context
    ) -> pb.ListAlertsResponse:
        ended_after = convert.optional_time(request, "ended_after", "ended_after")
        alerts, token = page(
            await self._alerts.list_alerts(principal(), ended_after=ended_after),
            key=newest_first,
            size=request.page_size,
            token=request.page_token,
            query=f"alerts {ended_after}",
        )
        return pb.ListAlertsResponse(
            alerts=[convert.alert_to_pb(a) for a in alerts], next_page_token=token
        )


def alert_service(alerts: AlertService) -> ServiceSpec:
    """The ``ServiceSpec`` mounting ``AlertService`` (no public methods)."""
    servicer = AlertServicer(alerts=alerts)
    return ServiceSpec(
        SERVICE_NAME, lambda server: pb_grpc.add_AlertServiceServicer_to_server(servicer, server)
    )
