"""``headend epg import`` / ``export`` against a real server."""

from __future__ import annotations

import argparse
import gzip
import io
from pathlib import Path

import pytest
from lxml import etree

from epg.cli import export_guide, import_file, read_map, register, run_import
from protos import epg_pb2
from tests.epg.support import GUIDE, Grpc


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="headend")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def test_import_and_export_over_grpc(grpc_epg: Grpc, tmp_path: Path, dtd_path: Path) -> None:
    guide = tmp_path / "guide.xml.gz"
    guide.write_bytes(gzip.compress(GUIDE))
    mapping = tmp_path / "map.txt"
    mapping.write_text("# source -> ours\nSRC-GD1 gd1.gdtv.cn\n", encoding="utf-8")
    env = {
        "EPG_TARGET": f"127.0.0.1:{grpc_epg.port}",
        "HEADEND_API_KEY": await grpc_epg.token("broadcaster:gdtv"),
    }
    out = io.StringIO()
    status = await import_file(parse("epg", "import", str(guide), "--map", str(mapping)), env, out)
    assert status == 1  # one bad programme reported
    lines = out.getvalue().splitlines()
    assert "programmes written 3" in lines[0]
    assert lines[1].endswith(
        ":17: gd1.gdtv.cn: bad time: '2026-03-02' is not YYYYMMDDhhmmss [+hhmm]"
    )
    xml = io.BytesIO()
    args = parse(
        "epg",
        "export",
        "--channels",
        "gd1.gdtv.cn",
        "--from",
        "2026-03-02T08:00:00+08:00",
        "--to",
        "2026-03-03T00:00:00+00:00",
    )
    assert await export_guide(args, env, xml) == 0
    doc = etree.fromstring(xml.getvalue())
    assert etree.DTD(str(dtd_path)).validate(doc)
    assert len(doc.findall("programme")) == 3
    listed = await grpc_epg.stub.ListChannels(
        epg_pb2.ListChannelsRequest(), metadata=await grpc_epg.md()
    )
    assert [c.name for c in listed.channels] == ["channels/gd1.gdtv.cn"]


def test_naive_export_times_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("epg", "export", "--from", "2026-03-02T08:00:00")
    assert "has no UTC offset" in capsys.readouterr().err


def test_missing_api_key_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HEADEND_API_KEY", raising=False)
    guide = tmp_path / "g.xml"
    guide.write_bytes(GUIDE)
    assert run_import(parse("epg", "import", str(guide))) == 2
    assert capsys.readouterr().err.strip() == "headend epg: HEADEND_API_KEY is not set"


def test_map_file_errors_name_the_line(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("a=b\nc, d  # comment\n\n", encoding="utf-8")
    assert read_map(good) == {"a": "b", "c": "d"}
    bad = tmp_path / "bad.txt"
    bad.write_text("a b\nonly-one\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"bad\.txt:2"):
        read_map(bad)


async def test_import_lists_the_first_problems_and_counts_the_rest(
    grpc_epg: Grpc, tmp_path: Path
) -> None:
    # Each problem line quotes the file: no control character reaches the terminal.
    guide = tmp_path / "many.xml"
    guide.write_bytes(
        b"<tv>"
        + b'<programme start="x" channel="a&#x9b;2J.cn"><title>t</title></programme>\n' * 150
        + b"</tv>"
    )
    env = {
        "EPG_TARGET": f"127.0.0.1:{grpc_epg.port}",
        "HEADEND_API_KEY": await grpc_epg.token("broadcaster:gdtv"),
    }
    out = io.StringIO()
    assert await import_file(parse("epg", "import", str(guide)), env, out) == 1
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 + 100 + 1
    assert lines[1].endswith(":1: a 2J.cn: bad time: 'x' is not YYYYMMDDhhmmss [+hhmm]")
    assert lines[-1] == f"{guide}: 50 more problem(s) not listed"
    assert "\x9b" not in out.getvalue()
