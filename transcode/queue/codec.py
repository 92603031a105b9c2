"""How the queue keeps a job in its hash and a job event in its stream (no I/O)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from transcode.jobs import (
    Job,
    JobEncryption,
    JobEvent,
    JobState,
    PackageFormat,
    Progress,
    SubtitleFile,
)


def event_fields(state: str, reason: str = "", progress: Progress | None = None) -> list[str]:
    """A job event as its stream fields (name, value, name, value ...)."""
    p = progress or Progress()
    return [
        "state", state, "reason", reason, "percent", f"{p.percent:.3f}",
        "speed", f"{p.speed:.3f}", "eta", f"{p.eta_seconds:.3f}", "phase", p.phase,
    ]  # fmt: skip


def text(value: bytes | str | None) -> str:
    """A Redis reply as text ("" for none)."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def job_from_hash(raw: Mapping[bytes, bytes]) -> Job:
    """Decode a job hash."""
    d = {text(k): text(v) for k, v in raw.items()}
    # "key_rotation": an encrypted asset's seconds per key; absent or "" (older jobs): clear.
    rotation = d.get("key_rotation", "")
    return Job(
        id=d["id"],
        source=d["source"],
        asset=d["asset"],
        profile=d.get("profile", ""),
        state=JobState(d["state"]),
        created_at=datetime.fromisoformat(d["created_at"]),
        updated_at=datetime.fromisoformat(d["updated_at"]),
        progress=Progress(
            percent=float(d.get("percent") or 0),
            speed=float(d.get("speed") or 0),
            eta_seconds=float(d.get("eta") or 0),
            phase=d.get("phase", ""),
        ),
        reason=d.get("reason", ""),
        deliveries=int(d.get("deliveries") or 0),
        worker=d.get("worker", ""),
        cancel_requested=d.get("cancel") == "1",
        output=d.get("output", ""),
        encryption=JobEncryption(int(rotation)) if rotation else None,
        # Absent in a job queued before subtitles existed.
        subtitles=tuple(SubtitleFile(*s) for s in json.loads(d.get("subtitles") or "[]")),
        audio_language=d.get("audio_language", ""),
        # Absent in a job queued before formats existed: those were all MPEG-TS.
        format=PackageFormat(d.get("format") or PackageFormat.TS.value),
    )


def event_from_fields(raw: Mapping[bytes, bytes], job_id: str) -> JobEvent:
    """Decode one entry of a job's event stream."""
    d = {text(k): text(v) for k, v in raw.items()}
    return JobEvent(
        job_id=job_id,
        state=JobState(d["state"]),
        progress=Progress(
            float(d.get("percent") or 0),
            float(d.get("speed") or 0),
            float(d.get("eta") or 0),
            d.get("phase", ""),
        ),
        reason=d.get("reason", ""),
    )
