"""Proto <-> domain conversions of device profiles, for the server and its client.

Beside :mod:`subscriber.convert` (which uses it for the login answer). A format or codec
number the domain has no word for (unspecified, or added to the proto later) is
``InvalidField`` naming its place (``device_profile.formats[1]``), never UNKNOWN. The
platform's profile (the carrier has none for a box) has an empty name on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from headend.rpc import optional_timestamp, to_timestamp
from headend.rpc.resources import ResourceName
from protos import subscriber_pb2 as pb
from subscriber import domain
from subscriber.errors import InvalidField

K = TypeVar("K")
W = TypeVar("W")

DEVICE_PROFILE = ResourceName("carriers/{carrier}/deviceProfiles/{profile}")
FORMAT: dict[pb.DeliveryFormat, domain.DeliveryFormat] = {
    pb.DELIVERY_FORMAT_HLS_TS: "hls-ts",
    pb.DELIVERY_FORMAT_HLS_CMAF: "hls-cmaf",
    pb.DELIVERY_FORMAT_DASH: "dash",
    pb.DELIVERY_FORMAT_MULTICAST: "multicast",
}
FORMAT_PB = {v: k for k, v in FORMAT.items()}
CODEC: dict[pb.VideoCodec, domain.VideoCodec] = {
    pb.VIDEO_CODEC_H264: "h264",
    pb.VIDEO_CODEC_HEVC: "hevc",
}
CODEC_PB = {v: k for k, v in CODEC.items()}


def _words(values: Iterable[K], table: Mapping[K, W], field: str) -> tuple[W, ...]:
    """Enum numbers as domain words (or words as numbers); ``InvalidField`` on
    ``field[i]`` for one ``table`` does not hold."""
    words = []
    for i, value in enumerate(values):
        if value not in table:
            raise InvalidField(f"{field}[{i}]", "unspecified or unknown value")
        words.append(table[value])
    return tuple(words)


def device_profile(p: domain.DeviceProfile) -> pb.DeviceProfile:
    """A device profile on the wire (the platform's: no name); a format or codec word the
    wire has no number for is ``InvalidField`` naming its place."""
    return pb.DeviceProfile(
        name=DEVICE_PROFILE.format(p.carrier_id, p.profile_id) if p.profile_id else "",
        display_name=p.display_name,
        models=list(p.models),
        formats=_words(p.formats, FORMAT_PB, "device_profile.formats"),
        codecs=_words(p.codecs, CODEC_PB, "device_profile.codecs"),
        max_height=p.max_height,
        update_time=to_timestamp(p.updated_at),
    )


def device_profile_from_pb(
    p: pb.DeviceProfile, field: str = "device_profile"
) -> domain.DeviceProfile:
    """A device profile from the wire; errors name ``field``'s parts (``field.name``...)."""
    carrier_id, profile_id = ("", "")
    if p.name:
        carrier_id, profile_id = DEVICE_PROFILE.parse(p.name, field=f"{field}.name")
    try:
        updated_at = optional_timestamp(p, "update_time")
    except ValueError as err:
        raise InvalidField(f"{field}.update_time", "not a valid time") from err
    return domain.DeviceProfile(
        carrier_id=carrier_id,
        profile_id=profile_id,
        display_name=p.display_name,
        models=tuple(p.models),
        formats=_words(p.formats, FORMAT, f"{field}.formats"),
        codecs=_words(p.codecs, CODEC, f"{field}.codecs"),
        max_height=p.max_height,
        updated_at=updated_at,
    )
