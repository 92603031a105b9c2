"""Device profiles: the rules on what a carrier's box models play.

A carrier names its models in profiles; a box's profile is the one naming its model,
else the carrier's ``default`` profile, else :data:`~subscriber.domain.values.PLATFORM_PROFILE`
(MPEG-TS HLS, H.264, any size), which every HLS box plays. Models are compared exactly
with the model a box was bound with, and a bound model is stored trimmed, so a profile's
model is stored text without surrounding spaces (one with them could never match).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from headend.errors import InvalidArgument
from headend.text import validate_text
from subscriber.domain.rules import text_field, validate_carrier_id
from subscriber.domain.values import DELIVERY_FORMATS, VIDEO_CODECS, DeviceProfile
from subscriber.errors import InvalidField

# The profile of the carrier's boxes whose model no profile names.
DEFAULT_PROFILE_ID = "default"
MAX_MODELS_PER_PROFILE = 64
MODEL_MAX_CHARS = 64
# A carrier's profiles are read whole (list, define): this keeps that bounded.
MAX_PROFILES_PER_CARRIER = 256
# 8K UHD: no rung of the platform's ladders is taller.
MAX_HEIGHT_LIMIT = 4320
PROFILE_NAME_MAX_CHARS = 200
# Errors name the request's fields: the profile is DefineDeviceProfileRequest.device_profile.
FIELD = "device_profile"


def _distinct(values: Sequence[str], field: str, what: str) -> None:
    """At least one value and no repeats (the repeat is named with its first place)."""
    if not values:
        raise InvalidField(field, f"at least one {what}")
    seen: dict[str, int] = {}
    for i, value in enumerate(values):
        if value in seen:
            raise InvalidField(f"{field}[{i}]", f"repeats {field}[{seen[value]}]")
        seen[value] = i


def validate_model(value: str, field: str) -> str:
    """A device model as a profile names it: 1..64 printable characters, no surrounding
    spaces (compared exactly with a bound box's trimmed model)."""
    if not value:
        raise InvalidField(field, "required")
    try:
        validate_text(field, value, max_chars=MODEL_MAX_CHARS)
    except InvalidArgument as err:
        raise InvalidField(err.field, err.reason) from err
    if not value.isprintable() or value != value.strip():
        raise InvalidField(field, "printable characters without surrounding spaces only")
    return value


def validate_profile_id(value: str, field: str = f"{FIELD}.name") -> str:
    """A profile id follows the carrier id rule (``[a-z0-9][a-z0-9._-]{0,62}``)."""
    return validate_carrier_id(value, field)


def validate_profile(profile: DeviceProfile) -> DeviceProfile:
    """A profile as a carrier defines it, its display name trimmed; ``InvalidField``
    naming the field (``device_profile.models[3]``) otherwise."""
    validate_profile_id(profile.profile_id)
    name = text_field(
        profile.display_name,
        f"{FIELD}.display_name",
        max_chars=PROFILE_NAME_MAX_CHARS,
        required=False,
    )
    models = f"{FIELD}.models"
    if profile.profile_id == DEFAULT_PROFILE_ID:
        if profile.models:
            raise InvalidField(models, "the default profile names no models (it has the rest)")
    else:
        if len(profile.models) > MAX_MODELS_PER_PROFILE:
            raise InvalidField(models, f"at most {MAX_MODELS_PER_PROFILE} models")
        _distinct(profile.models, models, "model")
        for i, model in enumerate(profile.models):
            validate_model(model, f"{models}[{i}]")
    for i, fmt in enumerate(profile.formats):
        if fmt not in DELIVERY_FORMATS:
            raise InvalidField(f"{FIELD}.formats[{i}]", f"must be one of {DELIVERY_FORMATS}")
    _distinct(profile.formats, f"{FIELD}.formats", "format")
    for i, codec in enumerate(profile.codecs):
        if codec not in VIDEO_CODECS:
            raise InvalidField(f"{FIELD}.codecs[{i}]", f"must be one of {VIDEO_CODECS}")
    _distinct(profile.codecs, f"{FIELD}.codecs", "codec")
    if not 0 <= profile.max_height <= MAX_HEIGHT_LIMIT:
        raise InvalidField(f"{FIELD}.max_height", f"must be 0 (any) to {MAX_HEIGHT_LIMIT}")
    return replace(profile, display_name=name)
