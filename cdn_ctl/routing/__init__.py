"""Routing: which edge serves a box, counted and signed.

- :mod:`.router`: the decision (region hierarchy, bounded-load consistent
  hashing over :mod:`.ring`) and this replica's leases (:mod:`.ledger`);
- :mod:`.service`: :class:`RoutingService`, the one door in (the front door's
  ``Routing`` protocol and the admin face's routes, explanations and steering);
- :mod:`.controller`: the loop that feeds the router from Redis and probes;
- :mod:`.settings`: how long signed URLs, leases and steering manifests live.
"""

from __future__ import annotations

from cdn_ctl.routing.controller import Controller, ControllerStatus
from cdn_ctl.routing.ledger import RouteLedger
from cdn_ctl.routing.ring import HashRing
from cdn_ctl.routing.router import Consideration, Decision, RoutePolicy, Router
from cdn_ctl.routing.service import (
    RouteCounter,
    RoutedEdge,
    RouteRequest,
    RoutingService,
    steering_reload_uri,
)
from cdn_ctl.routing.settings import RoutingSettings

__all__ = [
    "Consideration",
    "Controller",
    "ControllerStatus",
    "Decision",
    "HashRing",
    "RouteCounter",
    "RouteLedger",
    "RoutePolicy",
    "RouteRequest",
    "RoutedEdge",
    "Router",
    "RoutingService",
    "RoutingSettings",
    "steering_reload_uri",
]
