"""A live channel's multicast output as the CDN controller sees it (``ListMulticastOutputs``).

Front doors give boxes on a carrier's managed network the multicast URL instead of HLS
(``cdn_ctl.frontdoor.policy.delivery``), so they need each channel's group, port,
protocol and regions, and whether the channel runs at all: a stopped channel's group
carries nothing. They never need, and are never given, the channel's source URLs. Pure:
built from a ``ChannelStatus`` by the service, from the wire by the client.
"""

from __future__ import annotations

from dataclasses import dataclass

from transcode.domain import ChannelState, ChannelStatus, Multicast


@dataclass(frozen=True, slots=True)
class MulticastOutput:
    """One channel's multicast output and whether the channel is running (not STOPPED)."""

    channel: str
    multicast: Multicast
    running: bool

    @property
    def url(self) -> str:
        """What a box on the managed network opens (``rtp://@239.1.1.1:5000``)."""
        return self.multicast.url


def multicast_output(status: ChannelStatus) -> MulticastOutput | None:
    """``status``'s multicast output (None for a channel without one): no source in it."""
    multicast = status.channel.multicast
    if multicast is None:
        return None
    return MulticastOutput(status.channel.id, multicast, status.state is not ChannelState.STOPPED)
