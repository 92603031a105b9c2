"""A live channel's outputs as the CDN controller sees them: its multicast output
(``ListMulticastOutputs``) and everything it offers boxes (``ListLiveOutputs``).

Front doors give boxes on a carrier's managed network the multicast URL instead of HLS
(``cdn_ctl.frontdoor.policy.delivery``), so they need each channel's group, port,
protocol and regions, and whether the channel runs at all: a stopped channel's group
carries nothing. They never need, and are never given, the channel's source URLs. Pure:
built from a ``ChannelStatus`` by the service, from the wire by the client.

Front doors also need the packagings a channel is published in (MPEG-TS always; CMAF,
which is CMAF-HLS and MPEG-DASH, when the channel lists it), to hand a box whose device
profile prefers those a URL that plays: a :class:`LiveOutput` carries both.
"""

from __future__ import annotations

from dataclasses import dataclass

from transcode.domain import ChannelState, ChannelStatus, Multicast
from transcode.jobs import PackageFormat


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


@dataclass(frozen=True, slots=True)
class LiveOutput:
    """What one live channel offers boxes: its multicast output (None: none), whether it
    runs, and the packagings it is published in besides MPEG-TS."""

    channel: str
    multicast: Multicast | None
    running: bool
    formats: tuple[PackageFormat, ...] = ()

    @property
    def cmaf(self) -> bool:
        """Is it published as CMAF too (CMAF-HLS and MPEG-DASH)?"""
        return PackageFormat.CMAF in self.formats


def live_output(status: ChannelStatus) -> LiveOutput:
    """``status``'s outputs: no source in them."""
    channel = status.channel
    running = status.state is not ChannelState.STOPPED
    return LiveOutput(channel.id, channel.multicast, running, channel.formats)
