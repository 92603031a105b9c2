"""Where a live channel runs: its cost in capacity units and the node that should take it.

Pure. A channel costs one unit per 1280x720 of pixels its ladder encodes per
frame, rounded up (at least 1): the "low" ladder is 1 unit, the full default
ladder 5, a stream-copy ``passthrough`` channel 1. A node's capacity is
``TC_NODE_CAPACITY`` units (4 per CPU core by default).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from transcode.domain import NodeInfo
from transcode.errors import InvalidRequest
from transcode.profiles import resolve_profile

UNIT_PIXELS = 1280 * 720


def channel_cost(profile_name: str) -> int:
    """Capacity units a channel on ``profile_name`` takes."""
    try:
        profile = resolve_profile(profile_name)
    except InvalidRequest:
        return 1
    if getattr(profile, "passthrough", False):
        return 1
    pixels = sum(r.width * r.height for r in profile.rungs)
    return max(1, math.ceil(pixels / UNIT_PIXELS))


def best_node(nodes: Sequence[NodeInfo], *, group: str, cost: int) -> NodeInfo | None:
    """The least-loaded node (by share of its capacity, then id) that is not draining, is in
    ``group`` (any when empty) and has room for ``cost``; None when none fits."""
    fits = [
        n for n in nodes if not n.draining and (not group or n.group == group) and n.room >= cost
    ]
    return min(fits, key=lambda n: (n.load / max(1, n.capacity), n.load, n.id), default=None)
