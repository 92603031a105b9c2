"""Bulk provisioning: one import row, its validation, and the per-row summary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from subscriber.domain.rules import (
    DEVICE_TEXT_MAX_CHARS,
    NAME_MAX_CHARS,
    normalize_mac,
    text_field,
    validate_aware,
    validate_email,
    validate_id,
    validate_max_streams,
    validate_phone,
    validate_region_code,
    validate_status,
)
from subscriber.domain.values import Package
from subscriber.errors import InvalidField


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One bulk-provisioning row as received (unvalidated)."""

    row: int
    subscriber_id: str
    display_name: str
    region_code: str
    status: str
    service_end: datetime | None
    max_streams: int
    contact_phone: str
    contact_email: str
    mac: str
    serial: str
    model: str
    package_ids: tuple[str, ...]
    entitled_from: datetime | None
    entitled_until: datetime | None


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one import row was refused (nothing of it was applied)."""

    row: int
    field: str
    error: str


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """Counts over an import, plus every refused row."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: tuple[RowError, ...] = ()

    def merge(self, other: ImportSummary) -> ImportSummary:
        """The sum of two summaries."""
        return ImportSummary(
            self.rows + other.rows,
            self.created + other.created,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            self.errors + other.errors,
        )


def validate_import_row(
    row: ImportRow, *, default_max_streams: int, packages: Mapping[str, Package], now: datetime
) -> ImportRow:
    """Check one import row completely; return it normalised (raises ``InvalidField``)."""
    validate_id(row.subscriber_id, "subscriber_id")
    status = validate_status(row.status or "active")
    display_name = text_field(
        row.display_name, "display_name", max_chars=NAME_MAX_CHARS, required=True
    )
    validate_region_code(row.region_code)
    validate_aware(row.service_end, "service_end")
    max_streams = validate_max_streams(row.max_streams or default_max_streams)
    phone = validate_phone(row.contact_phone)
    email = validate_email(row.contact_email)
    mac = normalize_mac(row.mac) if row.mac.strip() else ""
    serial = text_field(row.serial, "serial", max_chars=DEVICE_TEXT_MAX_CHARS, required=False)
    model = text_field(row.model, "model", max_chars=DEVICE_TEXT_MAX_CHARS, required=False)
    if not mac and (serial or model):
        raise InvalidField("mac", "serial/model given without a MAC")
    for package_id in row.package_ids:
        if package_id not in packages:
            raise InvalidField("package_ids", f"unknown package {package_id[:64]!r}")
    if len(set(row.package_ids)) != len(row.package_ids):
        raise InvalidField("package_ids", "a package is listed twice")
    start = validate_aware(row.entitled_from, "entitled_from") or now
    until = validate_aware(row.entitled_until, "entitled_until")
    if until is not None and until <= start:
        raise InvalidField("entitled_until", "must be after entitled_from")
    return ImportRow(
        row=row.row,
        subscriber_id=row.subscriber_id,
        display_name=display_name,
        region_code=row.region_code,
        status=status,
        service_end=row.service_end,
        max_streams=max_streams,
        contact_phone=phone,
        contact_email=email,
        mac=mac,
        serial=serial,
        model=model,
        package_ids=row.package_ids,
        entitled_from=row.entitled_from,
        entitled_until=until,
    )
