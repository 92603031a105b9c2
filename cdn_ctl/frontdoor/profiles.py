"""What a box's device profile changed in a front door answer, counted and logged.

The rules are pure and live elsewhere: the rungs a profile is offered in
:mod:`cdn_ctl.frontdoor.rungs`, the delivery (multicast, a format, the HLS-TS
fallback) in :func:`cdn_ctl.frontdoor.policy.delivery`. These apply them where a master
is answered and leave a trace when the answer differs from the platform profile's: the
``cdn_profile_masters_total`` and ``cdn_profile_fallbacks_total`` counters, and a log line
whose ``profile`` field is the token's compact claim (``mt.a.720``).
"""

from __future__ import annotations

import logging

from cdn_ctl.boxtoken import BoxToken, profile_claim
from cdn_ctl.frontdoor.policy import delivery
from cdn_ctl.frontdoor.rungs import Offer, offer
from cdn_ctl.metrics import CdnMetrics
from cdn_ctl.upstream.outputs import LiveDirectory

log = logging.getLogger("cdn_ctl.frontdoor.app")


def offer_for(
    text: str, box: BoxToken, *, channel: str, kind: str, metrics: CdnMetrics | None
) -> Offer:
    """``text`` (a master) as ``box``'s profile is offered it; ``kind`` is live or catchup."""
    offered = offer(text, box.profile)
    if offered.dropped:
        change = "lowest_only" if offered.lowest_only else "filtered"
        if metrics is not None:
            metrics.profile_masters.labels(kind, change).inc()
        log.info(
            "device profile left rungs out of a master",
            extra={
                "channel": channel,
                "kind": kind,
                "profile": profile_claim(box.profile),
                "dropped": offered.dropped,
                "change": change,
            },
        )
    return offered


def count_fallback(
    box: BoxToken,
    channel: str,
    *,
    directory: LiveDirectory | None,
    metrics: CdnMetrics | None,
) -> None:
    """Count (and log) a live master served as HLS-TS to a box whose profile lists no
    format the channel offers it: once per master, where the box starts playing, not per
    lineup entry (a lineup of 200 channels would count 200)."""
    output = directory.get(channel) if directory is not None else None
    answer = delivery(output, profile=box.profile, region=box.region)
    if not answer.fallback:
        return
    if metrics is not None:
        metrics.profile_fallbacks.labels(answer.fallback).inc()
    log.info(
        "device profile lists no format the channel offers: HLS-TS",
        extra={
            "channel": channel,
            "profile": profile_claim(box.profile),
            "reason": answer.fallback,
        },
    )
