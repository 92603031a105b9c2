"""The front door's cached view of the EPG and subscriber services (gRPC clients).

The box-facing hot path (variant playlist polls) must not make a gRPC round
trip per request, so answers are cached (:mod:`.guide` for the EPG,
:mod:`.subscriber` for entitlements and leases), and a service that cannot
answer is left alone until the retry time it gave while the caches keep
serving, within their bounds (:mod:`.common`).
"""

from __future__ import annotations

from cdn_ctl.upstream.common import Outage, deny_reason
from cdn_ctl.upstream.guide import EpgCache, on_air, utc_now
from cdn_ctl.upstream.subscriber import Lease, LeaseKeeper, Login, SubscriberClient, Verdict

__all__ = [
    "EpgCache",
    "Lease",
    "LeaseKeeper",
    "Login",
    "Outage",
    "SubscriberClient",
    "Verdict",
    "deny_reason",
    "on_air",
    "utc_now",
]
