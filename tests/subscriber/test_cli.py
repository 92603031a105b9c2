"""``headend subscribers ...`` against a real server, run as a separate process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from protos import subscriber_pb2 as pb
from subscriber.importfile import CsvError, read_csv
from subscriber.store.codec import sub_key
from tests.support.subscriber import Api

# What headend/cli.py does with register(): one sub-command tree, then args.func(args).
ENTRY = (
    "import argparse, sys\n"
    "from subscriber.cli import register\n"
    "parser = argparse.ArgumentParser(prog='headend')\n"
    "register(parser.add_subparsers(required=True))\n"
    "args = parser.parse_args(sys.argv[1:])\n"
    "sys.exit(args.func(args))\n"
)
HEADER = (
    "subscriber_id,display_name,region_code,service_end,max_streams,mac,serial,model,"
    "packages,entitled_until\n"
)


async def cli(api: Api, *args: str, as_: str = "carrier:acme") -> tuple[int, str, str]:
    env = {
        **os.environ,
        "SUBSCRIBER_TARGET": f"127.0.0.1:{api.port}",
        "HEADEND_API_KEY": await api.tokens(as_),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ENTRY,
        "subscribers",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text(HEADER + "".join(line + "\n" for line in lines), encoding="utf-8")
    return path


async def test_import_reports_rows_and_rerun_is_unchanged(world: Api, tmp_path: Path) -> None:
    lines = [
        f"c{i},Customer {i},510104,2027-12-31,2,02-00-00-00-01-{i:02x},SN{i},B860,basic;sports,"
        for i in range(30)
    ]
    lines.insert(3, "bad,Bad Row,999999,,,,,,basic,")
    lines.insert(5, "bad2,Bad Date,510104,31/12/2027,,,,,basic,")
    path = write_csv(tmp_path / "subs.csv", lines)
    code, out, err = await cli(
        world, "import", str(path), "--rows-per-call", "10", "--chunk-rows", "4"
    )
    assert code == 1
    assert "32 rows: 30 created, 0 updated, 0 unchanged, 2 failed" in out
    assert "row 5: region_code:" in err
    assert "row 7: service_end:" in err
    assert "import" in err
    assert "row/s" in err
    sub = await world.call(
        "GetSubscriber",
        pb.GetSubscriberRequest(name="carriers/acme/subscribers/c7"),
        as_="carrier:acme",
    )
    # a date means "through that day" in China time: service ends at the next midnight +08:00
    assert sub.service_end.ToJsonString() == "2027-12-31T16:00:00Z"
    code, out, _ = await cli(world, "import", str(path), "--quiet")
    assert "0 created, 0 updated, 30 unchanged, 2 failed" in out


async def test_first_steps_create_bind_activate_entitle(world: Api) -> None:
    code, out, err = await cli(
        world, "create", "--id", "dave", "--name", "Dave", "--region", "330106", "-o", "json"
    )
    assert code == 0, err
    assert json.loads(out)[0]["subscriber_id"] == "dave"
    code, out, err = await cli(
        world, "bind", "--id", "dave", "--mac", "AA:BB:CC:00:0D:01", "--model", "B860"
    )
    assert code == 0, err
    code, out, err = await cli(world, "activate", "--mac", "aa:bb:cc:00:0d:01", "-o", "json")
    assert code == 0, err
    secret = json.loads(out)[0]["device_secret"]
    code, out, err = await cli(world, "entitle", "--id", "dave", "--package", "sports")
    assert code == 0, err
    login = await world.stub.DeviceLogin(
        pb.DeviceLoginRequest(mac="aa:bb:cc:00:0d:01", device_secret=secret)
    )
    assert list(login.channel_ids) == ["cctv5"]
    code, _, err = await cli(world, "entitle", "--id", "dave", "--package", "nope")
    assert code == 1
    assert "INVALID_ARGUMENT" in err
    assert "package_id" in err


async def test_missing_key_is_one_clear_line(world: Api) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HEADEND_API_KEY"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ENTRY,
        "subscribers",
        "get",
        "--id",
        "x",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert err.decode().strip() == "headend subscribers: HEADEND_API_KEY is not set"


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        pytest.param(
            "subscriber_id,display_name\n", "missing columns ['region_code']", id="missing"
        ),
        pytest.param(
            "subscriber_id,display_name,region_code,colour\n", "unknown columns", id="unknown"
        ),
    ],
)
def test_bad_header_is_refused(tmp_path: Path, header: str, needle: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(header + "a,b,110101\n", encoding="utf-8")
    with pytest.raises(CsvError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        read_csv(path)


def test_unreadable_cells_become_row_errors(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "x.csv",
        [
            "a,A,110101,,two,,,,,",
            "b,B,110101,2027-01-01T00:00:00,,,,,,",
            "c,C,110101,,,,,,basic, 2027-06-30",
        ],
    )
    report = read_csv(path)
    assert [(e.row, e.field) for e in report.errors] == [(2, "max_streams"), (3, "service_end")]
    assert [r.row for r in report.rows] == [4]
    assert report.rows[0].entitled_until.ToJsonString() == "2027-06-30T16:00:00Z"


async def test_nasty_file_gives_per_row_errors_and_imports_the_rest(
    world: Api, tmp_path: Path
) -> None:
    path = tmp_path / "nasty.csv"
    path.write_bytes(
        HEADER.encode()
        + b'n1,"Unclosed,510104,,,,,,basic,\n'  # line 2
        + b"n2,Good Two,510104,,,,,,basic,\n"
        + b"n3,Bad \xff UTF-8,510104,,,,,,basic,\n"  # line 4
        + b"n4,"
        + b"w" * 100_000
        + b",510104,,,,,,basic,\n"  # line 5
        + b"n5,Absurd,510104,,99999999999999999999,,,,basic,\n"  # line 6
        + b"n6,Far Future,510104,9999-12-31,,,,,basic,\n"  # line 7
        + b"n7,Bad MAC,510104,,,zz:zz,,,basic,\n"  # line 8
        + b",No Id,510104,,,,,,basic,\n"  # line 9
        + b"n9,Too,Many,Cells,510104,,,,,,basic,\n"  # line 10
        + b"n10,Good Ten,510104,,,,,,basic,\n"
    )
    code, out, err = await cli(world, "import", str(path), "--quiet")
    assert code == 1
    assert "Traceback" not in err
    assert "10 rows: 2 created, 0 updated, 0 unchanged, 8 failed" in out
    for needle in (
        "row 2: line: unterminated quote",
        "row 4: line: not valid UTF-8",
        "row 5: line: longer than",
        "row 6: max_streams:",
        "row 7: service_end:",
        "row 8: mac:",
        "row 9: subscriber_id:",
        "row 10: line: 12 cells; the header has 10",
    ):
        assert needle in err, (needle, err)
    assert await world.redis.exists(sub_key("acme", "n2"), sub_key("acme", "n10")) == 2


async def test_unreadable_date_argument_is_one_clear_line(world: Api) -> None:
    code, _, err = await cli(
        world, "create", "--id", "x", "--name", "X", "--region", "110101", "--service-end", "soon"
    )
    assert code == 2
    assert err.strip() == "headend subscribers: --service-end: not a date or ISO time: 'soon'"
