"""The route ledger: which stream leases this replica counts on which edge.

A lease (a box playing one channel, :mod:`headend.ids`) is counted on the edge
routing sent it to, and stays counted while the box keeps reloading its
playlist; one that stops reloading expires. The counts are what the router's
capacity and balance rules read; the rung each lease last reloaded is what the edges'
prefetch sidecars pull ahead (:meth:`RouteLedger.watched`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    edge_id: str
    channel: str
    expires_at: float
    rung: str


class RouteLedger:
    """Leases per edge and per (edge, channel), expiring unless refreshed."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self.leases: Counter[str] = Counter()
        self.channels: Counter[tuple[str, str]] = Counter()
        self.edge_channels: Counter[str] = Counter()
        self.total = 0

    def start(
        self, lease_id: str, *, edge_id: str, channel: str, expires_at: float, rung: str = ""
    ) -> None:
        """Count a lease on an edge (moving it if it was elsewhere), playing ``rung``
        ("" when not known: a catch-up window, or a move that keeps the lease's rung)."""
        old = self._entries.get(lease_id)
        if not rung and old is not None and old.channel == channel:
            rung = old.rung
        self.end(lease_id)
        self._entries[lease_id] = _Entry(edge_id, channel, expires_at, rung)
        self.leases[edge_id] += 1
        self.channels[(edge_id, channel)] += 1
        if self.channels[(edge_id, channel)] == 1:
            self.edge_channels[edge_id] += 1
        self.total += 1

    def touch(self, lease_id: str, *, expires_at: float, rung: str = "") -> str | None:
        """Extend a lease (now playing ``rung``, if given); return its edge, or None if
        unknown or expired."""
        entry = self._entries.get(lease_id)
        if entry is None:
            return None
        entry.expires_at = expires_at
        if rung:
            entry.rung = rung
        return entry.edge_id

    def edge_of(self, lease_id: str, channel: str | None = None) -> str | None:
        """The edge a live lease is on (None if unknown, or for another channel)."""
        entry = self._entries.get(lease_id)
        if entry is None or (channel is not None and entry.channel != channel):
            return None
        return entry.edge_id

    def end(self, lease_id: str) -> None:
        """Forget a lease."""
        entry = self._entries.pop(lease_id, None)
        if entry is None:
            return
        key = (entry.edge_id, entry.channel)
        self.leases[entry.edge_id] -= 1
        self.channels[key] -= 1
        if self.channels[key] <= 0:
            del self.channels[key]
            self.edge_channels[entry.edge_id] -= 1
        self.total -= 1

    def expire(self, now: float) -> int:
        """Drop leases past their expiry; return how many."""
        gone = [lease for lease, entry in self._entries.items() if entry.expires_at <= now]
        for lease in gone:
            self.end(lease)
        return len(gone)

    def watched(self) -> dict[str, set[str]]:
        """Per edge, the ``channel/rung`` its leases play (leases with a rung only)."""
        out: dict[str, set[str]] = {}
        for entry in self._entries.values():
            if entry.rung:
                out.setdefault(entry.edge_id, set()).add(f"{entry.channel}/{entry.rung}")
        return out

    def counts(self) -> dict[str, int]:
        """Leases per edge (non-zero only)."""
        return {e: n for e, n in self.leases.items() if n > 0}
