"""A consistent-hash ring of edge ids: which edges a channel prefers, in order."""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable

# Orders a ring remembers before it starts afresh (one per channel asked about).
_ORDERS_MAX = 100_000


def _point(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class HashRing:
    """A consistent-hash ring of edge ids with ``vnodes`` points each."""

    def __init__(self, edge_ids: Iterable[str], *, vnodes: int) -> None:
        points = sorted(
            (_point(f"{edge_id}#{i}"), edge_id) for edge_id in edge_ids for i in range(vnodes)
        )
        self._hashes = [p for p, _ in points]
        self._owners = [o for _, o in points]
        self._distinct = len(set(self._owners))
        self._orders: dict[str, tuple[str, ...]] = {}

    def order(self, key: str) -> tuple[str, ...]:
        """Every edge id, in clockwise order of first appearance from ``hash(key)``."""
        cached = self._orders.get(key)
        if cached is not None:
            return cached
        seen: dict[str, None] = {}
        count = len(self._hashes)
        start = bisect.bisect(self._hashes, _point(key))
        for i in range(count):
            seen.setdefault(self._owners[(start + i) % count], None)
            if len(seen) == self._distinct:
                break
        result = tuple(seen)
        if len(self._orders) > _ORDERS_MAX:
            self._orders.clear()
        self._orders[key] = result
        return result
