"""A guide the platform exports passes ``tv_validate_file``, the XMLTV project's own checker
(Debian's ``xmltv-util``): it checks the DTD and more (channel ids, times, language codes)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from protos import epg_pb2
from tests.epg.support import CH, GUIDE, T0, Grpc, chunks, ts, tv_validate_file


async def test_exported_guide_passes_tv_validate_file(
    grpc_epg: Grpc, tmp_path: Path, dtd_path: Path
) -> None:
    md = await grpc_epg.md("broadcaster:gdtv")
    options = epg_pb2.ImportOptions(channel_map={"SRC-GD1": CH})
    report = await grpc_epg.stub.ImportXmltv(chunks(GUIDE, options, 100), metadata=md)
    assert report.programmes_written == 3
    request = epg_pb2.ExportXmltvRequest(start=ts(T0), stop=ts(T0 + timedelta(days=1)))
    exported = b"".join([c.data async for c in grpc_epg.stub.ExportXmltv(request, metadata=md)])
    guide = tmp_path / "guide.xml"
    guide.write_bytes(exported)
    result = tv_validate_file(guide, dtd_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert exported.count(b"<programme ") == 3


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        pytest.param(
            '<programme start="20260302080000 +0800" channel="nowhere.example">'
            "<title>T</title></programme>",
            "Channel 'nowhere.example' does not have a <channel>-entry",
            id="programme-for-undeclared-channel",
        ),
        pytest.param(
            '<channel id="a.example"><display-name>A</display-name></channel>'
            '<programme channel="a.example"><title>T</title></programme>',
            "does not carry attribute start",
            id="programme-without-start",
        ),
    ],
)
def test_tv_validate_file_rejects_a_broken_guide(
    tmp_path: Path, dtd_path: Path, body: str, complaint: str
) -> None:
    guide = tmp_path / "broken.xml"
    guide.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<!DOCTYPE tv SYSTEM "xmltv.dtd">\n<tv>{body}</tv>\n',
        encoding="utf-8",
    )
    result = tv_validate_file(guide, dtd_path)
    assert result.returncode != 0
    assert complaint in result.stdout
