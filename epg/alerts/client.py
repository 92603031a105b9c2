"""The one client of ``AlertService`` (served by the EPG server): alert values in and out,
the server's errors rebuilt as ``EpgError`` leaves (``AlertNotFound``, ``NotAllowed`` ...).

    async with AlertClient("epg.internal:50051", api_key) as alerts:
        alert = await alerts.confirm("20261130-abcdef")
"""

from __future__ import annotations

import functools
from datetime import datetime

from epg.alerts import convert
from epg.alerts.domain import Alert
from epg.errors import EpgError
from headend.rpc import ServiceClient, to_timestamp
from headend.rpc.resources import MAX_PAGE_SIZE
from protos import alerts_pb2 as pb
from protos import alerts_pb2_grpc as pb_grpc


class AlertClient(ServiceClient):
    """``AlertService`` over one gRPC channel, with an API key."""

    service = "epg"
    root = EpgError

    @functools.cached_property
    def _stub(self) -> pb_grpc.AlertServiceStub:
        return pb_grpc.AlertServiceStub(self.channel)

    async def issue(
        self, alert: Alert, *, alert_id: str = "", validate_only: bool = False
    ) -> Alert:
        """Issue ``alert`` (its id: ``alert_id``, else ``alert.id``, else the server's)."""
        request = pb.IssueAlertRequest(
            alert_id=alert_id or alert.id,
            alert=convert.alert_to_pb(alert),
            validate_only=validate_only,
        )
        return convert.alert_from_wire(await self.call(self._stub.IssueAlert, request))

    async def confirm(self, alert_id: str) -> Alert:
        """Confirm another key's alert (the two-person rule)."""
        request = pb.ConfirmAlertRequest(name=convert.ALERT.format(alert_id))
        return convert.alert_from_wire(await self.call(self._stub.ConfirmAlert, request))

    async def cancel(self, alert_id: str, reason: str = "") -> Alert:
        """End an alert now."""
        request = pb.CancelAlertRequest(name=convert.ALERT.format(alert_id), reason=reason)
        return convert.alert_from_wire(await self.call(self._stub.CancelAlert, request))

    async def get(self, alert_id: str) -> Alert:
        """One alert."""
        request = pb.GetAlertRequest(name=convert.ALERT.format(alert_id))
        return convert.alert_from_wire(await self.call(self._stub.GetAlert, request))

    async def list_alerts(self, *, ended_after: datetime | None = None) -> list[Alert]:
        """Every alert kept (every page), newest first; with ``ended_after`` only those
        pending or in force at or after it."""
        found: list[Alert] = []
        token = ""
        while True:
            request = pb.ListAlertsRequest(
                page_size=MAX_PAGE_SIZE, page_token=token, ended_after=to_timestamp(ended_after)
            )
            reply = await self.call(self._stub.ListAlerts, request)
            found.extend(convert.alert_from_wire(a) for a in reply.alerts)
            token = reply.next_page_token
            if not token:
                return found
