"""Playback rules: what an account may watch, and may this box play this channel now."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from subscriber.domain.values import Decision, DenyReason, Entitlement, Package, PlaybackState


def effective_channels(
    entitlements: Iterable[Entitlement], packages: Mapping[str, Package], at: datetime
) -> tuple[str, ...]:
    """The sorted union of channels of the packages entitled at ``at``."""
    channels: set[str] = set()
    for ent in entitlements:
        package = packages.get(ent.package_id)
        if package is not None and ent.active_at(at):
            channels.update(package.channel_ids)
    return tuple(sorted(channels))


def account_denial(state: PlaybackState, at: datetime) -> DenyReason | None:
    """Why this box may not play anything at ``at``, or None."""
    device, sub = state.device, state.subscriber
    if device.status == "unbound":
        return DenyReason.UNKNOWN_DEVICE
    if device.status == "blocked":
        return DenyReason.DEVICE_BLOCKED
    if state.carrier_status != "active":
        return DenyReason.CARRIER_NOT_ACTIVE
    if sub.status == "terminated":
        return DenyReason.SUBSCRIBER_TERMINATED
    if sub.status == "suspended":
        return DenyReason.SUBSCRIBER_SUSPENDED
    if sub.service_end is not None and at >= sub.service_end:
        return DenyReason.SERVICE_EXPIRED
    return None


def decide(
    state: PlaybackState | None, channel_id: str, packages: Mapping[str, Package], at: datetime
) -> Decision:
    """May this box play ``channel_id`` at ``at``?

    ``Authorize`` runs the same checks inside Redis (``subscriber/store/authorize.lua``);
    ``tests/subscriber/test_store.py`` holds the two equal.
    """
    if state is None:
        return Decision(DenyReason.UNKNOWN_DEVICE)
    sub = state.subscriber
    reason = account_denial(state, at)
    if reason is None and not any(
        ent.active_at(at)
        and (pkg := packages.get(ent.package_id)) is not None
        and channel_id in pkg.channel_ids
        for ent in sub.entitlements
    ):
        reason = DenyReason.NOT_ENTITLED
    return Decision(reason, sub.version, sub.carrier_id, sub.subscriber_id)
