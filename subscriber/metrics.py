"""Prometheus metrics of the subscriber service's own work: box logins, playback decisions,
lease starts and refused provisioning requests, each refusal by its reason.

Declared once here, on the registry the service's gRPC metrics endpoint serves. Every
known label value starts at zero, so a rate is defined before the first refusal (an
alert on a spike of ``bad_secret`` logins needs the series to exist). Label values are
the refusal codes in lower case (``not_entitled``, ``bad_secret``...) or ``allowed``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from subscriber.domain import DenyReason
from subscriber.domain.helpdesk import BAD_SECRET, STREAM_LIMIT_REACHED

ALLOWED = "allowed"
_DENIALS = tuple(reason.value.lower() for reason in DenyReason)


def outcome(refusal: str) -> str:
    """A refusal code (or '' when allowed) as a label value."""
    return refusal.lower() or ALLOWED


class SubscriberMetrics:
    """Logins, authorize decisions and lease starts by outcome; provisioning refusals."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.logins = Counter(
            "subscriber_device_logins_total",
            "Box logins (DeviceLogin), by outcome: allowed, or why refused.",
            ["outcome"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "subscriber_authorize_decisions_total",
            "Playback decisions (Authorize), by reason: allowed, or the deny reason.",
            ["reason"],
            registry=self.registry,
        )
        self.lease_starts = Counter(
            "subscriber_lease_starts_total",
            "Stream lease requests (StartSession), by outcome: allowed, or why refused.",
            ["outcome"],
            registry=self.registry,
        )
        self.provisioning_errors = Counter(
            "subscriber_provisioning_errors_total",
            "Refused provisioning requests and failed import rows, by RPC.",
            ["rpc"],
            registry=self.registry,
        )
        for value in (ALLOWED, *_DENIALS, BAD_SECRET.lower()):
            self.logins.labels(value)
        for value in (ALLOWED, *_DENIALS, STREAM_LIMIT_REACHED.lower()):
            self.lease_starts.labels(value)
        # The hot path increments a child it already holds.
        self._decisions = {value: self.decisions.labels(value) for value in (ALLOWED, *_DENIALS)}

    def decision(self, refusal: str) -> None:
        """Count one Authorize answer ('' when allowed)."""
        self._decisions[outcome(refusal)].inc()
