"""Live channels on a farm of transcode nodes: ownership leases, placement, failover.

``ownership`` (the lease and fencing token per channel, fenced writes),
``nodes`` (node adverts and drain requests), ``placement`` (channel cost, the
best node), ``intents`` (what the control service records), ``node`` (the node
process: claims, runs, renews, lets go).
"""

from __future__ import annotations

from transcode.farm.intents import ChannelIntents
from transcode.farm.node import Node, create_node, run_node
from transcode.farm.nodes import NodeDirectory
from transcode.farm.ownership import FarmMetrics, FencedWriter, Lease, Ownership
from transcode.farm.placement import best_node, channel_cost

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
    "create_node",
    "run_node",
]
