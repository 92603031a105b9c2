"""The provisioning engineer's ``headend subscribers`` commands: the real console script
against a real server on port 0 and real Redis, each state change read back by the client."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from subscriber.cli_common import SUBSCRIBER_FIELDS
from subscriber.cli_devices import EXPLANATIONS
from subscriber.client import SubscriberClient
from subscriber.domain import DenyReason
from subscriber.errors import SubscriberError
from subscriber.importfile import csv_records
from tests.support.subscriber import ALICE_MAC, Api

HEADEND = str(Path(sys.executable).with_name("headend"))
NEW_MAC = "aa:bb:cc:00:00:99"
HEADER = "subscriber_id,display_name,region_code,max_streams,mac,packages\n"


async def headend(
    api: Api, *args: str, as_: str = "carrier:acme", target_env: str | None = None
) -> tuple[int, str, str]:
    """Run ``headend subscribers ARGS`` with ``SUBSCRIBER_TARGET`` at the test server."""
    env = {
        **os.environ,
        "SUBSCRIBER_TARGET": target_env or f"127.0.0.1:{api.port}",
        "HEADEND_API_KEY": await api.tokens(as_),
    }
    proc = await asyncio.create_subprocess_exec(
        HEADEND,
        "subscribers",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def acme(world: Api) -> AsyncIterator[SubscriberClient]:
    """The service client as carrier acme, to read back what a command changed."""
    async with SubscriberClient(f"127.0.0.1:{world.port}", await world.tokens("carrier:acme")) as c:
        yield c


async def add_subscribers(client: SubscriberClient, count: int) -> None:
    for i in range(count):
        await client.create_subscriber(
            "acme", f"c{i:02d}", display_name=f"Customer {i}", region_code="510104"
        )


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_list_follows_every_page_in_each_format(world: Api, acme: SubscriberClient) -> None:
    await add_subscribers(acme, 7)
    await acme.set_subscriber_status("acme", "c03", "suspended")
    code, out, err = await headend(world, "list", "--page-size", "3", "-o", "json")
    assert code == 0, err
    assert [s["subscriber_id"] for s in json.loads(out)] == ["alice"] + [
        f"c{i:02d}" for i in range(7)
    ]
    code, out, err = await headend(world, "list", "--page-size", "3", "-o", "csv")
    assert code == 0, err
    assert len(csv_rows(out)) == 8
    code, out, err = await headend(world, "list", "--status", "suspended", "--page-size", "2")
    assert code == 0, err
    header, *lines = out.splitlines()
    assert header.split()[:2] == ["SUBSCRIBER_ID", "DISPLAY_NAME"]
    assert [line.split()[0] for line in lines] == ["c03"]


async def test_export_writes_every_field_of_every_subscriber(
    world: Api, acme: SubscriberClient
) -> None:
    await add_subscribers(acme, 4)
    code, out, err = await headend(world, "--target", f"127.0.0.1:{world.port}", "export")
    assert code == 0, err
    reader = csv.DictReader(io.StringIO(out))
    rows = list(reader)
    assert tuple(reader.fieldnames or ()) == SUBSCRIBER_FIELDS
    assert [r["subscriber_id"] for r in rows] == ["alice", "c00", "c01", "c02", "c03"]
    assert rows[1]["region_code"] == "510104"


async def test_update_changes_only_the_fields_given(world: Api, acme: SubscriberClient) -> None:
    before = await acme.get_subscriber("acme", "alice")
    code, out, err = await headend(
        world, "update", "alice", "--display-name", "Alice Li", "--max-streams", "3", "-o", "json"
    )
    assert code == 0, err
    assert json.loads(out)[0]["display_name"] == "Alice Li"
    after = await acme.get_subscriber("acme", "alice")
    assert (after.display_name, after.max_streams) == ("Alice Li", 3)
    assert (after.region_code, after.contact_phone) == (before.region_code, before.contact_phone)
    assert after.version > before.version


async def test_update_with_a_stale_version_is_refused_in_one_line(
    world: Api, acme: SubscriberClient
) -> None:
    stale = (await acme.get_subscriber("acme", "alice")).version
    await acme.set_subscriber_status("acme", "alice", "suspended")
    code, out, err = await headend(
        world, "update", "alice", "--region", "110101", "--expected-version", str(stale)
    )
    assert code == 1
    assert out == ""
    assert err.startswith("headend subscribers: ABORTED: ")
    assert (await acme.get_subscriber("acme", "alice")).region_code == "440305"


async def test_update_with_nothing_to_change_is_a_usage_error(world: Api) -> None:
    code, _, err = await headend(world, "update", "alice")
    assert code == 2
    assert err.strip() == (
        "headend subscribers: nothing to change: give at least one field option (see --help)"
    )


async def test_unbind_frees_the_box(world: Api, acme: SubscriberClient) -> None:
    code, out, err = await headend(world, "unbind", ALICE_MAC, "-o", "csv")
    assert code == 0, err
    assert csv_rows(out)[0]["status"] == "unbound"
    assert (await acme.authorize(ALICE_MAC, "cctv1")).reason == DenyReason.UNKNOWN_DEVICE


async def test_block_then_why_not_says_blocked_and_unblock_lifts_it(
    world: Api, acme: SubscriberClient
) -> None:
    code, _, err = await headend(world, "block", ALICE_MAC)
    assert code == 0, err
    assert (await acme.authorize(ALICE_MAC, "cctv1")).reason == DenyReason.DEVICE_BLOCKED
    code, out, err = await headend(world, "why-not", ALICE_MAC, "cctv1", "-o", "json")
    assert code == 0, err
    (answer,) = json.loads(out)
    assert (answer["allowed"], answer["reason"]) == (False, "DEVICE_BLOCKED")
    assert answer["explanation"] == EXPLANATIONS[DenyReason.DEVICE_BLOCKED]
    code, _, err = await headend(world, "block", "--unblock", ALICE_MAC)
    assert code == 0, err
    assert (await acme.authorize(ALICE_MAC, "cctv1")).allowed


@pytest.mark.parametrize(
    ("channel", "allowed", "reason"),
    [
        pytest.param("cctv1", "true", "", id="allowed"),
        pytest.param("cctv5", "false", "NOT_ENTITLED", id="not-entitled"),
    ],
)
async def test_why_not_answers_allowed_and_denied(
    world: Api, channel: str, allowed: str, reason: str
) -> None:
    code, out, err = await headend(world, "why-not", ALICE_MAC, channel, "-o", "csv")
    assert code == 0, err
    (row,) = csv_rows(out)
    assert (row["allowed"], row["reason"]) == (allowed, reason)
    assert row["explanation"] == EXPLANATIONS[DenyReason(reason) if reason else None]


def test_every_deny_reason_is_explained() -> None:
    assert set(EXPLANATIONS) == {None, *DenyReason}


async def test_replace_moves_the_subscriber_to_the_new_box(
    world: Api, acme: SubscriberClient
) -> None:
    code, out, err = await headend(
        world, "replace", ALICE_MAC, NEW_MAC.upper(), "--model", "B860", "-o", "json"
    )
    assert code == 0, err
    (device,) = json.loads(out)
    assert (device["mac"], device["subscriber_id"]) == (NEW_MAC, "alice")
    assert (await acme.authorize(ALICE_MAC, "cctv1")).reason == DenyReason.UNKNOWN_DEVICE
    assert (await acme.authorize(NEW_MAC, "cctv1")).subscriber_id == "alice"


async def test_revoke_takes_the_package_away(world: Api, acme: SubscriberClient) -> None:
    code, _, err = await headend(world, "revoke", "alice", "basic")
    assert code == 0, err
    held, _ = await acme.list_entitlements("acme", "alice")
    assert held == ()
    assert (await acme.authorize(ALICE_MAC, "cctv1")).reason == DenyReason.NOT_ENTITLED


async def test_audit_pages_from_an_entry_with_a_limit(world: Api) -> None:
    code, out, err = await headend(world, "audit", "-o", "json")
    assert code == 0, err
    entries = json.loads(out)
    assert [e["rpc"] for e in entries] == [
        "CreateCarrier",
        "CreateSubscriber",
        "BindDevice",
        "ActivateDevice",
        "Entitle",
    ]
    assert entries[0]["after_json"]
    code, out, err = await headend(
        world, "audit", "--after", entries[0]["entry_id"], "--limit", "1", "-o", "csv"
    )
    assert code == 0, err
    assert [r["entry_id"] for r in csv_rows(out)] == [entries[1]["entry_id"]]


async def test_get_and_packages_print_tables_by_default(world: Api) -> None:
    code, out, err = await headend(world, "get", "--id", "alice")
    assert code == 0, err
    assert out.splitlines()[1].split()[:2] == ["alice", "Alice"]
    code, out, err = await headend(world, "packages")
    assert code == 0, err
    assert out.splitlines() == [
        "PACKAGE_ID  NAME    CHANNEL_IDS",
        "basic       basic   cctv1,cctv2",
        "sports      sports  cctv5",
    ]


async def test_target_overrides_subscriber_target(world: Api) -> None:
    nowhere = "127.0.0.1:9"  # discard: nothing listens
    code, _, err = await headend(world, "get", "--id", "alice", target_env=nowhere)
    assert code == 3, err
    code, out, err = await headend(
        world, "--target", f"127.0.0.1:{world.port}", "get", "--id", "alice", target_env=nowhere
    )
    assert code == 0, err
    assert "alice" in out


async def test_a_refusal_exits_1_with_one_line(world: Api) -> None:
    code, out, err = await headend(world, "get", "--id", "nobody")
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("headend subscribers: NOT_FOUND: ")


def write_import(tmp_path: Path) -> Path:
    path = tmp_path / "subs.csv"
    path.write_text(
        HEADER
        + "n1,New One,510104,,,basic\n"
        + "n2,Bad Region,999999,,,basic\n"  # line 3
        + "n3,New Three,510104,,02-00-00-00-00-03,sports\n"
        + "n4,Unknown Package,510104,,,gold\n"  # line 5
        + "n5,Too Many,510104,99,,basic\n",  # line 6
        encoding="utf-8",
    )
    return path


async def test_import_dry_run_reports_and_changes_nothing(world: Api, tmp_path: Path) -> None:
    path = write_import(tmp_path)
    before = await world.snapshot("*")
    code, out, err = await headend(world, "import", str(path), "--dry-run", "--quiet")
    assert code == 1
    assert out.strip() == "5 rows: 2 valid, 3 failed (dry run: nothing written)"
    assert "row 3: region_code:" in err
    assert "row 5: package_ids:" in err
    assert "row 6: max_streams:" in err
    after = await world.snapshot("*")
    assert after.keys() == before.keys()


async def test_import_writes_rejected_rows_to_a_file(
    world: Api, acme: SubscriberClient, tmp_path: Path
) -> None:
    path = write_import(tmp_path)
    rejects = tmp_path / "rejects.csv"
    code, out, err = await headend(world, "import", str(path), "--rejects", str(rejects), "--quiet")
    assert code == 1, err
    assert "5 rows: 2 created, 0 updated, 0 unchanged, 3 failed" in out
    rows = csv_rows(rejects.read_text(encoding="utf-8"))
    assert [(r["row"], r["field"]) for r in rows] == [
        ("3", "region_code"),
        ("5", "package_ids"),
        ("6", "max_streams"),
    ]
    assert rows[0]["line"] == "n2,Bad Region,999999,,,basic"
    assert (await acme.get_subscriber("acme", "n3")).display_name == "New Three"
    with pytest.raises(SubscriberError):
        await acme.get_subscriber("acme", "n2")


def test_import_file_is_read_a_row_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    lines = "".join(f"s{i},Name {i},510104,,,basic\n" for i in range(20_000))
    path.write_text(HEADER + lines, encoding="utf-8")
    with path.open("rb") as handle:
        records = csv_records(handle)
        first = next(records)
        assert first.row == 2
        # One buffer in, not the file: the rest is read as the rows are taken.
        assert handle.tell() < path.stat().st_size // 10
        assert sum(1 for _ in records) == 19_999


async def test_device_events_counts_and_provisioning_errors(world: Api) -> None:
    code, out, err = await headend(world, "why-not", ALICE_MAC, "cctv5", "-o", "json")
    assert code == 0, err
    code, out, err = await headend(world, "device-events", ALICE_MAC, "-o", "json")
    assert code == 0, err
    [event] = json.loads(out)
    assert (event["kind"], event["channel_id"], event["allowed"], event["refusal"]) == (
        "authorize", "cctv5", False, "NOT_ENTITLED",
    )  # fmt: skip
    code, out, err = await headend(world, "device-events", ALICE_MAC, "--leases", "-o", "json")
    assert (code, json.loads(out)) == (0, [])
    # Another carrier's box is not found (exit status of NOT_FOUND), like no box at all.
    beta = await headend(world, "device-events", ALICE_MAC, as_="carrier:beta")
    nowhere = await headend(world, "device-events", "aa:bb:cc:0f:0f:0f", as_="carrier:beta")
    assert beta[0] == nowhere[0] != 0
    assert beta[2] == nowhere[2]
    code, out, err = await headend(world, "counts", "-o", "json")
    assert code == 0, err
    assert {(c["carrier_id"], c["status"], c["count"]) for c in json.loads(out)} == {
        ("acme", "active", 1), ("acme", "suspended", 0), ("acme", "terminated", 0),
    }  # fmt: skip
    code, out, err = await headend(world, "unbind", "aa:bb:cc:0f:0f:0f")
    assert code != 0
    code, out, err = await headend(world, "provisioning-errors", "-o", "json")
    assert code == 0, err
    [refused] = json.loads(out)
    assert (refused["rpc"], refused["subject"], refused["reason"]) == (
        "UnbindDevice", "device/aa:bb:cc:0f:0f:0f", "DEVICE_NOT_FOUND",
    )  # fmt: skip
    code, out, err = await headend(world, "provisioning-errors", "-o", "json", as_="admin")
    assert code == 0, err
    assert [e["carrier_id"] for e in json.loads(out)] == ["acme"]
