"""The EPG's gRPC face by Google's API rules, on port 0 with real auth and Redis.

Resource names (``channels/{channel}``, ``channels/{channel}/programmes/{programme}``)
refused with INVALID_ARGUMENT naming the field; every list paged with tokens bound
to the query that made them; ``UpdateChannel`` changing only its ``update_mask``;
``ErrorInfo`` reasons in UPPER_SNAKE_CASE; an HTTP rule on every unary RPC and
none on the streams. (Enum zeros: ``test_convert.py``.)
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, timedelta
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf.field_mask_pb2 import FieldMask

from headend.rpc import error_details
from protos import epg_pb2
from tests.epg.support import (
    CH,
    PARENT,
    T0,
    Grpc,
    Metadata,
    channel,
    pb_channel,
    pb_create,
    pb_prog,
    plant_channel,
    pname,
    refused,
    seed,
    ts,
)

WINDOW: dict[str, Any] = {"start": ts(T0), "stop": ts(T0 + timedelta(hours=6))}
UPPER_SNAKE = re.compile(r"[A-Z]+(?:_[A-Z]+)*")


async def _pages(
    fetch: Callable[[str], Awaitable[Any]], items: Callable[[Any], list[Any]]
) -> tuple[list[list[Any]], str]:
    """Every page's items, and the first page's token (to replay in another query)."""
    pages, token, first = [], "", ""
    while True:
        resp = await fetch(token)
        pages.append(items(resp))
        token = resp.next_page_token
        first = first or token
        if not token:
            return pages, first


def _names(err: grpc.aio.AioRpcError, field: str) -> None:
    """``err`` is INVALID_ARGUMENT naming ``field``, with an UPPER_SNAKE reason."""
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error_details(err)
    assert field in details.fields, details.fields
    assert UPPER_SNAKE.fullmatch(details.reason), details.reason


async def _invalid(call: Awaitable[Any], field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    _names(err.value, field)


# ---------------------------------------------------------------- paging


async def test_list_channels_pages_in_guide_order_and_binds_its_token(grpc_epg: Grpc) -> None:
    md = await grpc_epg.md()
    for n in (5, 1, 4, 2, 3):
        await grpc_epg.stub.CreateChannel(
            pb_create(f"c{n}.gdtv.cn", number=n, owner="gdtv", active=n != 3), metadata=md
        )

    def fetch(token: str) -> Awaitable[epg_pb2.ListChannelsResponse]:
        request = epg_pb2.ListChannelsRequest(page_size=2, page_token=token)
        return grpc_epg.stub.ListChannels(request, metadata=md)

    pages, token = await _pages(fetch, lambda r: [c.name for c in r.channels])
    assert pages == [
        ["channels/c1.gdtv.cn", "channels/c2.gdtv.cn"],
        ["channels/c3.gdtv.cn", "channels/c4.gdtv.cn"],
        ["channels/c5.gdtv.cn"],
    ]
    other = epg_pb2.ListChannelsRequest(page_size=2, page_token=token, active_only=True)
    await _invalid(grpc_epg.stub.ListChannels(other, metadata=md), "page_token")
    forged = epg_pb2.ListChannelsRequest(page_token="not-a-token")
    await _invalid(grpc_epg.stub.ListChannels(forged, metadata=md), "page_token")
    negative = epg_pb2.ListChannelsRequest(page_size=-1)
    await _invalid(grpc_epg.stub.ListChannels(negative, metadata=md), "page_size")


async def test_list_programmes_pages_and_refuses_a_token_of_another_window(
    grpc_epg: Grpc,
) -> None:
    md = await seed(grpc_epg, 5)

    def fetch(token: str) -> Awaitable[epg_pb2.ListProgrammesResponse]:
        request = epg_pb2.ListProgrammesRequest(
            parent=PARENT, page_size=2, page_token=token, **WINDOW
        )
        return grpc_epg.stub.ListProgrammes(request, metadata=md)

    pages, token = await _pages(fetch, lambda r: [p.titles[0].text for p in r.programmes])
    assert pages == [["P0", "P1"], ["P2", "P3"], ["P4"]]
    moved = epg_pb2.ListProgrammesRequest(
        parent=PARENT, page_token=token, start=ts(T0), stop=ts(T0 + timedelta(hours=5))
    )
    await _invalid(grpc_epg.stub.ListProgrammes(moved, metadata=md), "page_token")
    await grpc_epg.stub.CreateChannel(pb_create("gd2.gdtv.cn", owner="gdtv"), metadata=md)
    elsewhere = epg_pb2.ListProgrammesRequest(
        parent="channels/gd2.gdtv.cn", page_token=token, **WINDOW
    )
    await _invalid(grpc_epg.stub.ListProgrammes(elsewhere, metadata=md), "page_token")


async def test_gaps_search_and_grid_page_with_tokens_bound_to_their_query(
    grpc_epg: Grpc,
) -> None:
    md = await seed(grpc_epg, 0)
    await grpc_epg.stub.PutProgrammes(
        epg_pb2.PutProgrammesRequest(
            parent=PARENT,
            programmes=[pb_prog(T0 + timedelta(hours=h), title=f"News {h}") for h in range(3)],
        ),
        metadata=md,
    )
    for n in (2, 3):
        await grpc_epg.stub.CreateChannel(
            pb_create(f"gd{n}.gdtv.cn", number=n, owner="gdtv"), metadata=md
        )

    def gaps(token: str, minimum: int = 0) -> Awaitable[epg_pb2.ListGapsResponse]:
        request = epg_pb2.ListGapsRequest(
            parent=PARENT, page_size=1, page_token=token, min_gap_seconds=minimum, **WINDOW
        )
        return grpc_epg.stub.ListGaps(request, metadata=md)

    pages, token = await _pages(gaps, lambda r: [g.start.ToDatetime(UTC) for g in r.gaps])
    starts = [T0 + timedelta(minutes=m) for m in (30, 90, 150)]
    assert pages == [[s] for s in starts]
    await _invalid(gaps(token, minimum=60), "page_token")

    def search(token: str, text: str = "news") -> Awaitable[epg_pb2.SearchResponse]:
        request = epg_pb2.SearchRequest(text=text, page_size=2, page_token=token, **WINDOW)
        return grpc_epg.stub.Search(request, metadata=md)

    pages, token = await _pages(search, lambda r: [p.titles[0].text for p in r.programmes])
    assert pages == [["News 0", "News 1"], ["News 2"]]
    await _invalid(search(token, text="new"), "page_token")

    def grid(token: str, hours: int = 6) -> Awaitable[epg_pb2.GridResponse]:
        request = epg_pb2.GridRequest(
            page_size=2, page_token=token, start=ts(T0), stop=ts(T0 + timedelta(hours=hours))
        )
        return grpc_epg.stub.Grid(request, metadata=md)

    pages, token = await _pages(grid, lambda r: [row.channel.name for row in r.rows])
    assert pages == [[PARENT, "channels/gd2.gdtv.cn"], ["channels/gd3.gdtv.cn"]]
    await _invalid(grid(token, hours=7), "page_token")


# ---------------------------------------------------------------- update_mask


async def test_update_channel_changes_only_the_masked_fields(grpc_epg: Grpc) -> None:
    md = await seed(grpc_epg, 0)
    partial = epg_pb2.Channel(name=PARENT, number=42, group="news")
    got = await grpc_epg.stub.UpdateChannel(
        epg_pb2.UpdateChannelRequest(
            channel=partial, update_mask=FieldMask(paths=["group"]), expected_version=1
        ),
        metadata=md,
    )
    assert (got.group, got.number, got.catchup_days, got.version) == ("news", 1, 7, 2)
    # No mask: the fields set in the message (number), nothing else.
    got = await grpc_epg.stub.UpdateChannel(
        epg_pb2.UpdateChannelRequest(channel=partial, expected_version=2), metadata=md
    )
    assert (got.group, got.number, got.names[0].text, got.version) == ("news", 42, "广东卫视", 3)
    # "*": every field, so the unset ones are cleared.
    got = await grpc_epg.stub.UpdateChannel(
        epg_pb2.UpdateChannelRequest(
            channel=pb_channel(owner="gdtv"), update_mask=FieldMask(paths=["*"]), expected_version=3
        ),
        metadata=md,
    )
    assert (got.group, got.number, got.version) == ("", 1, 4)
    assert got == await grpc_epg.stub.GetChannel(
        epg_pb2.GetChannelRequest(name=PARENT), metadata=md
    )


@pytest.mark.parametrize(
    "paths",
    [
        pytest.param(["version"], id="output-only"),
        pytest.param(["name"], id="identity"),
        pytest.param(["group", "no_such_field"], id="unknown"),
        pytest.param(["names.text"], id="sub-field"),
    ],
)
async def test_update_mask_with_a_path_it_may_not_change_is_refused(
    grpc_epg: Grpc, redis: aioredis.Redis, paths: list[str]
) -> None:
    md = await seed(grpc_epg, 0)

    async def update(g: Grpc, md: Metadata) -> Any:
        request = epg_pb2.UpdateChannelRequest(
            channel=pb_channel(owner="gdtv", group="news"),
            update_mask=FieldMask(paths=paths),
            expected_version=1,
        )
        return await g.stub.UpdateChannel(request, metadata=md)

    err = await refused(grpc_epg, redis, update, md)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "update_mask" in error_details(err).fields


# ---------------------------------------------------------------- resource names


def _get_channel(name: str) -> Any:
    return lambda g, md: g.stub.GetChannel(epg_pb2.GetChannelRequest(name=name), metadata=md)


def _put(parent: str = PARENT, **kw: Any) -> Any:
    request = epg_pb2.PutProgrammesRequest(parent=parent, programmes=[pb_prog(T0, **kw)])
    return lambda g, md: g.stub.PutProgrammes(request, metadata=md)


def _get_programme(name: str) -> Any:
    return lambda g, md: g.stub.GetProgramme(epg_pb2.GetProgrammeRequest(name=name), metadata=md)


BAD_NAMES = [
    pytest.param(_get_channel(CH), "name", id="bare-id"),
    pytest.param(_get_channel(f"stations/{CH}"), "name", id="other-collection"),
    pytest.param(_get_channel(f"{PARENT}/programmes/p1"), "name", id="too-deep"),
    pytest.param(_get_channel("channels/-bad-"), "name", id="bad-channel-id"),
    pytest.param(_get_channel("channels/gd1%2Egdtv.cn"), "name", id="other-spelling"),
    pytest.param(_get_channel("channels/" + "a" * 600), "name", id="too-long"),
    pytest.param(
        lambda g, md: g.stub.DeleteChannel(
            epg_pb2.DeleteChannelRequest(name="channels/", force=True), metadata=md
        ),
        "name",
        id="delete-empty-id",
    ),
    pytest.param(
        lambda g, md: g.stub.UpdateChannel(
            epg_pb2.UpdateChannelRequest(channel=epg_pb2.Channel(group="news"), expected_version=1),
            metadata=md,
        ),
        "channel.name",
        id="update-unnamed",
    ),
    pytest.param(_put(parent=CH), "parent", id="put-bare-parent"),
    pytest.param(_put(name=pname("p1", "gd2.gdtv.cn")), "programmes[0].name", id="put-elsewhere"),
    pytest.param(_put(name=f"{PARENT}/programmes/-p1"), "programmes[0].name", id="put-bad-id"),
    pytest.param(_put(name=f"{PARENT}/p1"), "programmes[0].name", id="put-not-a-programme"),
    pytest.param(
        lambda g, md: g.stub.DeleteProgrammes(
            epg_pb2.DeleteProgrammesRequest(parent="channels", ids=["p1"]), metadata=md
        ),
        "parent",
        id="delete-programmes-parent",
    ),
    pytest.param(
        lambda g, md: g.stub.ExpandSlots(
            epg_pb2.ExpandSlotsRequest(parent="channels/-"), metadata=md
        ),
        "parent",
        id="expand-any-channel",
    ),
    pytest.param(
        lambda g, md: g.stub.ListProgrammes(
            epg_pb2.ListProgrammesRequest(parent=f"{PARENT}/", **WINDOW), metadata=md
        ),
        "parent",
        id="list-trailing-slash",
    ),
    pytest.param(
        lambda g, md: g.stub.ListGaps(
            epg_pb2.ListGapsRequest(parent=f"channels/{CH} ", **WINDOW), metadata=md
        ),
        "parent",
        id="gaps-space",
    ),
    pytest.param(_get_programme(PARENT), "name", id="programme-as-channel"),
    pytest.param(_get_programme(f"{PARENT}/programmes/p1!"), "name", id="programme-bad-id"),
    pytest.param(_get_programme("channels/-/programmes/"), "name", id="programme-empty-id"),
]


@pytest.mark.parametrize(("call", "field"), BAD_NAMES)
async def test_bad_names_are_invalid_arguments_naming_the_field(
    grpc_epg: Grpc, redis: aioredis.Redis, call: Any, field: str
) -> None:
    md = await seed(grpc_epg, 2)
    _names(await refused(grpc_epg, redis, call, md), field)


async def test_get_programme_on_any_channel_or_its_own_only(grpc_epg: Grpc) -> None:
    await seed(grpc_epg, 1)
    md = await grpc_epg.md("carrier:acme")
    listed = await grpc_epg.stub.ListProgrammes(
        epg_pb2.ListProgrammesRequest(parent=PARENT, **WINDOW), metadata=md
    )
    name = listed.programmes[0].name
    assert name.startswith(f"{PARENT}/programmes/")
    pid = name.rpartition("/")[2]
    got = await grpc_epg.stub.GetProgramme(
        epg_pb2.GetProgrammeRequest(name=f"channels/-/programmes/{pid}"), metadata=md
    )
    assert got == listed.programmes[0]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grpc_epg.stub.GetProgramme(
            epg_pb2.GetProgrammeRequest(name=pname(pid, "gd2.gdtv.cn")), metadata=md
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_details(err.value).reason == "PROGRAMME_NOT_FOUND"


async def test_a_channel_id_once_accepted_with_a_newline_is_named_percent_encoded(
    grpc_epg: Grpc, redis: aioredis.Redis
) -> None:
    await plant_channel(redis, replace(channel(), id=f"{CH}\n", version=1))
    md = await grpc_epg.md()
    listed = await grpc_epg.stub.ListChannels(epg_pb2.ListChannelsRequest(), metadata=md)
    assert [c.name for c in listed.channels] == [f"{PARENT}%0A"]
    got = await grpc_epg.stub.GetChannel(
        epg_pb2.GetChannelRequest(name=f"{PARENT}%0A"), metadata=md
    )
    assert got == listed.channels[0]
    await grpc_epg.stub.DeleteChannel(
        epg_pb2.DeleteChannelRequest(name=f"{PARENT}%0A"), metadata=md
    )
    assert not (
        await grpc_epg.stub.ListChannels(epg_pb2.ListChannelsRequest(), metadata=md)
    ).channels


# ---------------------------------------------------------------- reasons


async def _reason(call: Awaitable[Any], code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code
    return error_details(err.value).reason


async def test_reasons_are_the_error_classes_in_upper_snake_case(grpc_epg: Grpc) -> None:
    md = await seed(grpc_epg, 1)
    stub = grpc_epg.stub
    reasons = [
        await _reason(
            stub.GetChannel(epg_pb2.GetChannelRequest(name="channels/nope.cn"), metadata=md),
            grpc.StatusCode.NOT_FOUND,
        ),
        await _reason(
            stub.GetProgramme(epg_pb2.GetProgrammeRequest(name=pname("nope")), metadata=md),
            grpc.StatusCode.NOT_FOUND,
        ),
        await _reason(stub.CreateChannel(pb_create(), metadata=md), grpc.StatusCode.ALREADY_EXISTS),
        await _reason(
            stub.DeleteChannel(epg_pb2.DeleteChannelRequest(name=PARENT), metadata=md),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
        await _reason(
            stub.UpdateChannel(
                epg_pb2.UpdateChannelRequest(channel=pb_channel(owner="gdtv"), expected_version=9),
                metadata=md,
            ),
            grpc.StatusCode.ABORTED,
        ),
        await _reason(
            stub.GetChannel(epg_pb2.GetChannelRequest(name="channels/a..b"), metadata=md),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        await _reason(
            stub.GetChannel(epg_pb2.GetChannelRequest(name="a/b/c"), metadata=md),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ]
    assert reasons == [
        "CHANNEL_NOT_FOUND",
        "PROGRAMME_NOT_FOUND",
        "CHANNEL_EXISTS",
        "CHANNEL_NOT_EMPTY",
        "VERSION_MISMATCH",
        "INVALID_CHANNEL",
        "INVALID_CHANNEL",
    ]
