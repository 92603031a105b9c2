"""EPG domain: channels, programmes, schedule rules and recurring slots (pure, no I/O).

Times are UTC instants; a programme covers the half-open interval
``[start, stop)``, so one programme may end exactly when the next starts.
Local wall-clock time only appears when a recurring slot is expanded in a
channel's IANA timezone, with an explicit policy for DST gaps and folds.

The parts: ``model`` (the frozen values), ``rules`` (validation, ids, gaps),
``slots`` (recurring slots) and ``codec`` (the stored forms).
"""

from __future__ import annotations

from epg.domain.codec import (
    decode_channel,
    decode_programme,
    decode_rights,
    encode_channel,
    encode_programme,
    encode_rights,
    with_version,
)
from epg.domain.model import (
    DEFAULT_RIGHTS,
    DEFAULT_TIMEZONE,
    Change,
    ChangeFeed,
    Channel,
    FoldPolicy,
    Gap,
    GapPolicy,
    Programme,
    Rating,
    Rights,
    SlotRule,
    Text,
    WritePolicy,
    WriteResult,
)
from epg.domain.rules import (
    EARLIEST,
    LATEST,
    MAX_CATCHUP_DAYS,
    MAX_CHANNEL_NUMBER,
    MAX_DESC_CHARS,
    MAX_ITEMS,
    MAX_PROGRAMME_SECONDS,
    MAX_SHORT_CHARS,
    MAX_TEXT_CHARS,
    MAX_URL_CHARS,
    MAX_WINDOW_SECONDS,
    find_gaps,
    guide_key,
    programme_id,
    time_key,
    validate_batch,
    validate_channel,
    validate_channel_id,
    validate_programme,
    validate_programme_id,
    validate_window,
    zone,
)
from epg.domain.slots import expand_slots, local_to_utc, validate_slot_rule

__all__ = [
    "DEFAULT_RIGHTS",
    "DEFAULT_TIMEZONE",
    "EARLIEST",
    "LATEST",
    "MAX_CATCHUP_DAYS",
    "MAX_CHANNEL_NUMBER",
    "MAX_DESC_CHARS",
    "MAX_ITEMS",
    "MAX_PROGRAMME_SECONDS",
    "MAX_SHORT_CHARS",
    "MAX_TEXT_CHARS",
    "MAX_URL_CHARS",
    "MAX_WINDOW_SECONDS",
    "Change",
    "ChangeFeed",
    "Channel",
    "FoldPolicy",
    "Gap",
    "GapPolicy",
    "Programme",
    "Rating",
    "Rights",
    "SlotRule",
    "Text",
    "WritePolicy",
    "WriteResult",
    "decode_channel",
    "decode_programme",
    "decode_rights",
    "encode_channel",
    "encode_programme",
    "encode_rights",
    "expand_slots",
    "find_gaps",
    "guide_key",
    "local_to_utc",
    "programme_id",
    "time_key",
    "validate_batch",
    "validate_channel",
    "validate_channel_id",
    "validate_programme",
    "validate_programme_id",
    "validate_slot_rule",
    "validate_window",
    "with_version",
    "zone",
]
