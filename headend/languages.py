"""Language codes: the one rule for what the platform accepts, and the form players are given.

Sources tag their tracks in ISO 639-2 (``chi``, ``zho``, ``eng``: MPEG-TS PMT language
descriptors, Matroska, MP4), operators type BCP-47 (``zh``, ``zh-Hans``, ``yue``), and HLS
wants BCP-47 (RFC 8216 ``LANGUAGE``, RFC 5646). :func:`player_language` turns the first
into the last, using the two-letter code where ISO 639-1 has one, as RFC 5646 requires.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from headend.errors import InvalidArgument

# A primary language subtag of 2-3 letters and optional subtags (script, region, variant).
_TAG = re.compile(r"[a-zA-Z]{2,3}(?:[-_][A-Za-z0-9]{2,8}){0,4}")
MAX_TAG_CHARS = 35
# "und" (undetermined), "mis", "mul", "zxx" say nothing a viewer can choose by.
_UNKNOWN = frozenset({"und", "mis", "mul", "zxx", "qaa"})

# ISO 639-2 (bibliographic and terminologic) -> ISO 639-1, for the languages the province's
# carriers and broadcasters use; a code not listed is kept as given.
_TWO_LETTER = {
    "chi": "zh", "zho": "zh", "eng": "en", "fre": "fr", "fra": "fr", "ger": "de", "deu": "de",
    "jpn": "ja", "kor": "ko", "spa": "es", "rus": "ru", "por": "pt", "ara": "ar", "ita": "it",
    "tib": "bo", "bod": "bo", "uig": "ug", "mon": "mn", "tha": "th", "vie": "vi", "msa": "ms",
    "may": "ms", "ind": "id", "hin": "hi", "zha": "za",
}  # fmt: skip
# What a player shows for a track without a title tag, in the language itself.
_NAMES = {
    "zh": "中文", "yue": "粤语", "nan": "闽南语", "hak": "客家话", "wuu": "吴语", "en": "English",
    "bo": "བོད་སྐད", "ug": "ئۇيغۇرچە", "mn": "Монгол", "za": "Vahcuengh", "ko": "한국어",
    "ja": "日本語", "fr": "Français", "de": "Deutsch", "es": "Español", "ru": "Русский",
    "pt": "Português", "ar": "العربية",
}  # fmt: skip


def is_language_tag(value: str) -> bool:
    """Whether ``value`` has the form of a language tag (``zh``, ``yue``, ``zh-Hans-CN``)."""
    return len(value) <= MAX_TAG_CHARS and _TAG.fullmatch(value) is not None


def validate_language(field: str, value: str) -> str:
    """``value`` if it is a language tag; ``InvalidArgument`` naming ``field`` otherwise."""
    if not is_language_tag(value):
        raise InvalidArgument(field, f"{value!r} is not a language tag (zh, en, yue, zh-Hans)")
    return value


def validate_languages(field: str, values: Sequence[str], *, limit: int) -> Sequence[str]:
    """Check a list of language tags (at most ``limit``, none twice); returns it."""
    if len(values) > limit:
        raise InvalidArgument(field, f"at most {limit} languages")
    for index, value in enumerate(values):
        validate_language(f"{field}[{index}]", value)
    if len({player_language(v).lower() for v in values}) != len(values):
        raise InvalidArgument(field, "a language is listed twice")
    return values


@functools.lru_cache(maxsize=256)
def player_language(tag: str) -> str:
    """The BCP-47 form of a tag as a source or an operator gave it ("" when it says nothing)."""
    primary, _, rest = tag.replace("_", "-").partition("-")
    primary = primary.lower()
    if primary in _UNKNOWN or not is_language_tag(tag):
        return ""
    primary = _TWO_LETTER.get(primary, primary)
    return f"{primary}-{rest}" if rest else primary


def language_name(tag: str) -> str:
    """A track's name for a player's menu from its (BCP-47) language: the language's own name
    where known, else the tag itself."""
    return _NAMES.get(tag) or _NAMES.get(tag.partition("-")[0]) or tag
