"""The one rule for free text the platform stores (names, titles, descriptions).

Stored text ends up inside line-oriented formats (M3U lineups, HLS
playlists, CSV exports, log lines) and XML. A control character, a line or
paragraph separator or a next-line character in a stored name is how one
field becomes a forged line in somebody else's lineup, or an XMLTV export
that no parser accepts. So none of them is ever stored: every service
validates text with :func:`validate_text` before it writes, and every output
encoder still escapes what it writes (defence in depth for data stored
before this rule existed).
"""

from __future__ import annotations

import re
import unicodedata

from headend.errors import InvalidArgument

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Multi-line fields (descriptions) may keep plain newlines; nothing else.
_FORBIDDEN_MULTILINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
# What encoders replace: the above plus what XML 1.0 cannot carry at all (lone
# surrogates, U+FFFE, U+FFFF), so sanitized text is always valid XML character data.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")
_UNSAFE_MULTILINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def forbidden_char(value: str, *, multiline: bool = False) -> str | None:
    """The first character of ``value`` that stored text may not contain, if any."""
    # Every forbidden character is non-printable, so nearly all text is done in C.
    if value.isprintable() or (multiline and value.replace("\n", "").isprintable()):
        return None
    match = (_FORBIDDEN_MULTILINE if multiline else _FORBIDDEN).search(value)
    if match is not None:
        return match.group()
    # Unassigned and private-use code points have no business in a guide either.
    for ch in value:
        if unicodedata.category(ch) in ("Cs", "Co", "Cn") and not ch.isprintable():
            return ch
    return None


def validate_text(
    field: str, value: str, *, max_chars: int, multiline: bool = False, required: bool = False
) -> str:
    """``value`` if it is storable text; ``InvalidArgument`` naming ``field`` otherwise."""
    if required and not value.strip():
        raise InvalidArgument(field, "required")
    if len(value) > max_chars:
        raise InvalidArgument(field, f"at most {max_chars} characters")
    bad = forbidden_char(value, multiline=multiline)
    if bad is not None:
        raise InvalidArgument(
            field, f"contains a control or line-separator character (U+{ord(bad):04X})"
        )
    return value


def sanitize(value: str, *, replacement: str = " ", multiline: bool = False) -> str:
    """``value`` with every control, separator and XML-invalid character replaced.

    For encoders writing data stored before the rule; ``multiline`` keeps plain newlines.
    """
    if value.isprintable():
        return value
    return (_UNSAFE_MULTILINE if multiline else _UNSAFE).sub(replacement, value)
