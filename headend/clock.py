"""Wall-clock time, the one way every package reads it."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def to_millis(when: datetime) -> datetime:
    """``when`` truncated to the millisecond (what the stores keep)."""
    return when.replace(microsecond=when.microsecond // 1000 * 1000)
