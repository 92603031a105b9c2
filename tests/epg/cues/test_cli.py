"""``headend cue``, run as the console script against a real EPG server (port 0, real
Redis), and its pure parts (``--at``, ``--type``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from epg.cli_cues import at, number
from epg.client import EpgClient
from epg.cues.client import CueClient
from epg.cues.domain import CueKind, CueState
from epg.cues.rules import START_NOW
from headend.auth import ADMIN
from headend.clitools import EXIT_REFUSED, EXIT_USAGE
from tests.epg.cues.support import CH, CH2, HN
from tests.epg.support import Grpc, channel

HEADEND = str(Path(sys.executable).with_name("headend"))
_CLEARED = ("HEADEND_API_KEY", "HEADEND_API_KEY_FILE", "HEADEND_DEBUG", "EPG_TARGET")


async def headend(*args: str, **env: str) -> tuple[int, str, str]:
    """``headend cue ARGS`` with ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    proc = await asyncio.create_subprocess_exec(
        HEADEND, "cue", *args, env={**base, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _env(grpc_epg: Grpc, who: str) -> dict[str, str]:
    async with EpgClient(grpc_epg.target, await grpc_epg.token(ADMIN)) as epg:
        for number_, (cid, owner) in enumerate(((CH, "gdtv"), (CH2, "gdtv"), (HN, "hntv")), 1):
            await epg.create_channel(channel(cid, owner=owner, number=number_))
    return {"EPG_TARGET": grpc_epg.target, "HEADEND_API_KEY": await grpc_epg.token(who)}


async def test_insert_show_list_cancel(grpc_epg: Grpc) -> None:
    env = await _env(grpc_epg, "broadcaster:gdtv")
    start = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    code, out, err = await headend(
        "insert", CH, "--id", "match-1", "--type", "0x34", "--at", start.isoformat(),
        "--duration", "5400", "--event-id", "0xBEEF", "--blackout", "440100,440300",
        "--description", "derby", "-o", "json", **env,
    )  # fmt: skip
    assert (code, err) == (0, "")
    made = json.loads(out)[0]
    assert (made["kind"], made["segmentation_type_id"], made["event_id"]) == ("segment", 52, 48879)
    assert made["blackout_regions"] == ["440100", "440300"]
    assert made["start"] == start.isoformat()
    assert made["creator"] == "broadcaster:gdtv"
    # A dry run checks and stores nothing.
    code, out, err = await headend("insert", CH2, "--id", "dry", "--dry-run", **env)
    assert (code, err) == (0, "")
    assert "dry" in out
    code, out, err = await headend("insert", CH2, "--id", "now", "--duration", "30", **env)
    assert (code, err) == (0, "")
    code, out, _ = await headend("show", CH, "match-1", **env)
    assert "match-1" in out
    assert "scheduled" in out
    code, out, _ = await headend("list", "--json", **env)
    assert [(c["channel_id"], c["id"]) for c in json.loads(out)] == [(CH2, "now"), (CH, "match-1")]
    code, out, _ = await headend(
        "list", CH, "--from", start.isoformat(), "--to", (start + timedelta(hours=2)).isoformat(),
        "-o", "csv", **env,
    )  # fmt: skip
    assert out.splitlines()[0].startswith("channel_id,id,kind,state,start")
    assert out.splitlines()[1].startswith(f"{CH},match-1,segment,scheduled,")
    assert len(out.splitlines()) == 2
    code, out, err = await headend("cancel", CH, "match-1", "-o", "json", **env)
    assert (code, err) == (0, "")
    assert json.loads(out)[0]["state"] == "cancelled"
    async with CueClient(grpc_epg.target, await grpc_epg.token(ADMIN)) as client:
        assert (await client.get(CH, "match-1")).state is CueState.CANCELLED
        listed = await client.list_cues(None, start - timedelta(days=1), start + timedelta(days=1))
        assert [c.id for c in listed] == ["now", "match-1"]
        assert listed[0].kind is CueKind.BREAK


async def test_refusals_and_usage(grpc_epg: Grpc) -> None:
    env = await _env(grpc_epg, "broadcaster:gdtv")
    code, _, err = await headend("insert", HN, **env)
    assert code == EXIT_REFUSED
    assert "may not change" in err
    code, _, err = await headend("insert", CH, "--blackout", "440100", **env)
    assert code != 0
    assert "cue.blackout_regions" in err
    code, _, err = await headend("insert", CH, "--kind", "break", "--type", "0x30", **env)
    assert code == EXIT_USAGE
    assert "--type" in err
    code, _, err = await headend("insert", CH, "--at", "tomorrow", **env)
    assert code == EXIT_USAGE
    code, _, err = await headend("cancel", CH, "nope", **env)
    assert code != 0
    assert "nope" in err
    carrier = await grpc_epg.token("carrier:acme")
    code, _, err = await headend("list", **{**env, "HEADEND_API_KEY": carrier})
    assert code == EXIT_REFUSED


def test_at_and_number() -> None:
    assert at("now") == START_NOW
    soon = at("+90")
    assert timedelta(seconds=80) < soon - datetime.now(UTC) <= timedelta(seconds=90)
    assert at("2030-05-01T08:00:00+08:00") == datetime(2030, 5, 1, 0, 0, tzinfo=UTC)
    for bad in ("+x", "2030-05-01T08:00:00", "soon"):
        with pytest.raises(argparse.ArgumentTypeError):
            at(bad)
    assert number("0x30") == 48
    assert number("52") == 52
    with pytest.raises(argparse.ArgumentTypeError):
        number("0xZZ")
