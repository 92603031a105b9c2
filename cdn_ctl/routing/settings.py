"""How routing signs redirects and how long leases and steering manifests live."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    """How redirects are signed and how long leases and steering live (``CDN_*``)."""

    # Live URLs are re-issued at every playlist reload: a revocation reaches a playing
    # box within this lifetime (plus the front door's entitlement cache).
    url_ttl_seconds: int = 30
    # A catch-up URL lives for its window's length plus this (pauses, slow links).
    catchup_url_grace_seconds: int = 300
    bind_client_ip: bool = True
    # A lease counts on its edge this long after the box's last playlist reload.
    lease_ttl_seconds: int = 60
    steering_ttl_seconds: int = 10
