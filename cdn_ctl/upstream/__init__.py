"""The front door's cached view of the EPG, subscriber and transcode services (over their
clients).

The box-facing hot path (variant playlist polls) must not make a gRPC round
trip per request, so answers are cached (:mod:`.guide` for the EPG,
:mod:`.subscriber` for entitlements and leases, :mod:`.alerts` for emergency alerts,
:mod:`.outputs` for the live channels' deliveries), and a service that cannot
answer is left alone until the retry time it gave while the caches keep
serving, within their bounds (:mod:`.common`). The calls themselves go
through ``epg.client.EpgClient`` and ``subscriber.client.SubscriberClient``,
whose domain errors are mapped here to the front door's own.
"""

from __future__ import annotations

from cdn_ctl.upstream.common import Outage, deny_reason
from cdn_ctl.upstream.guide import EpgCache, on_air
from cdn_ctl.upstream.subscriber import Lease, LeaseKeeper, Login, SubscriberCache, Verdict

__all__ = [
    "EpgCache",
    "Lease",
    "LeaseKeeper",
    "Login",
    "Outage",
    "SubscriberCache",
    "Verdict",
    "deny_reason",
    "on_air",
]
