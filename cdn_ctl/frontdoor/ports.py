"""What the front door needs from routing, declared here where it is used.

The front door never reaches into the router, its ledger of leases or the
signing keys: it asks for candidate edges (to fetch a master playlist), a
signature for one scope, a signed redirect for a box, and the end of a lease.
:class:`cdn_ctl.routing.RoutingService` is the implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cdn_ctl.domain import Edge, Redirect, Scope


class Routing(Protocol):
    """The routing the front door uses."""

    def candidates(self, channel: str, region: str) -> Sequence[Edge]:
        """Edges that may serve ``channel`` to ``region`` now, best first."""
        ...

    def sign(self, scope: Scope, *, lifetime_seconds: int, client_ip: str | None) -> str:
        """A path token prefix granting ``scope`` for ``lifetime_seconds``."""
        ...

    def redirect(
        self,
        scope: Scope,
        rest: str,
        *,
        region: str,
        client_ip: str | None,
        lease_id: str | None = None,
    ) -> Redirect:
        """Where a box in ``region`` fetches ``{scope}{rest}``, signed once."""
        ...

    def end(self, lease_id: str) -> None:
        """The lease is over: it no longer counts on any edge."""
        ...
