"""Live channels on a farm of transcode nodes: ownership leases, placement, failover.

``ownership`` (the lease and fencing token per channel, fenced writes),
``nodes`` (node adverts and drain requests), ``placement`` (channel cost, the
best node), ``intents`` (what the control service records), ``node`` (the node
process: claims, runs, renews, lets go).
"""

from __future__ import annotations

from transcode.farm.intents import ChannelIntents
from transcode.farm.node import Node
from transcode.farm.nodes import NodeDirectory
from transcode.farm.ownership import FarmMetrics, FencedWriter, Lease, Ownership
from transcode.farm.placement import best_node, channel_cost
from transcode.farm.process import run_node

__all__ = [
    "ChannelIntents",
    "FarmMetrics",
    "FencedWriter",
    "Lease",
    "Node",
    "NodeDirectory",
    "Ownership",
    "best_node",
    "channel_cost",
    "run_node",
]
