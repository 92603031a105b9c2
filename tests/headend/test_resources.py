"""Resource names, page tokens and update masks: the API rules every service calls."""

from __future__ import annotations

import pytest
from google.protobuf import field_mask_pb2

from headend.errors import InvalidArgument
from headend.rpc.resources import (
    MAX_PAGE_SIZE,
    ResourceName,
    decode_token,
    encode_token,
    page,
    page_size,
    update_paths,
)
from protos import keys_pb2

SUBSCRIBER = ResourceName("carriers/{carrier}/subscribers/{subscriber}")


def test_a_name_is_formatted_and_parsed_back() -> None:
    name = SUBSCRIBER.format("telecom-gd", "acct-1")
    assert name == "carriers/telecom-gd/subscribers/acct-1"
    assert SUBSCRIBER.parse(name) == ("telecom-gd", "acct-1")
    assert SUBSCRIBER.id(name) == "acct-1"
    assert SUBSCRIBER.variables == ("carrier", "subscriber")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "acct-1",
        "carriers/telecom-gd",
        "carriers/telecom-gd/devices/acct-1",
        "carriers//subscribers/acct-1",
        "carriers/telecom-gd/subscribers/acct-1/extra",
        "carriers/tele com/subscribers/acct-1",
        "carriers/" + "x" * 600 + "/subscribers/a",
    ],
)
def test_a_name_that_does_not_fit_is_refused_on_its_field(name: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        SUBSCRIBER.parse(name, field="subscriber.name")
    assert caught.value.field == "subscriber.name"
    assert "carriers/{carrier}/subscribers/{subscriber}" in caught.value.reason


def test_format_wants_one_id_per_variable() -> None:
    with pytest.raises(ValueError, match="takes 2 ids"):
        SUBSCRIBER.format("only-one")


def _walk(items: list[str], size: int, query: str = "") -> list[list[str]]:
    pages, token = [], ""
    while True:
        chunk, token = page(items, key=lambda i: i, size=size, token=token, query=query)
        pages.append(chunk)
        if not token:
            return pages


def test_pages_cover_the_list_once_in_order() -> None:
    items = [f"k{i:03}" for i in range(7)]
    assert _walk(list(reversed(items)), 3) == [items[0:3], items[3:6], items[6:7]]
    assert _walk([], 3) == [[]]


def test_an_item_added_between_pages_does_not_shift_the_others() -> None:
    items = ["a", "c", "e", "g"]
    first, token = page(items, key=lambda i: i, size=2, token="")
    assert first == ["a", "c"]
    second, _ = page(["b", *items], key=lambda i: i, size=2, token=token)
    assert second == ["e", "g"]


def test_page_size_defaults_caps_and_refuses_negative() -> None:
    assert page_size(0) == 100
    assert page_size(5) == 5
    assert page_size(10**6) == MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument) as caught:
        page_size(-1)
    assert caught.value.field == "page_size"


@pytest.mark.parametrize("token", ["garbage", "e30", "x" * 2000, encode_token("a", query="other")])
def test_a_token_not_made_for_this_query_is_refused(token: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        decode_token(token, query="carriers/telecom-gd")
    assert caught.value.field == "page_token"


def test_a_token_resumes_after_its_key_for_the_same_query() -> None:
    assert decode_token(encode_token("k7", query="q"), query="q") == "k7"
    assert decode_token("", query="q") == ""


def test_update_paths_follow_the_mask() -> None:
    key = keys_pb2.Key(name="keys/0123456789abcdef", principal="admin")
    allowed = {"principal", "create_time"}
    mask = field_mask_pb2.FieldMask(paths=["principal"])
    assert update_paths(key, mask, allowed) == {"principal"}
    assert update_paths(key, field_mask_pb2.FieldMask(paths=["*"]), allowed) == allowed
    # No mask: the fields the request set (name identifies, it is never an update).
    assert update_paths(key, field_mask_pb2.FieldMask(), allowed) == {"principal"}


def test_update_paths_refuse_a_path_that_cannot_change() -> None:
    mask = field_mask_pb2.FieldMask(paths=["principal", "name"])
    with pytest.raises(InvalidArgument) as caught:
        update_paths(keys_pb2.Key(), mask, {"principal"})
    assert caught.value.field == "update_mask"
    assert "name" in caught.value.reason


def test_nothing_to_resume_after_is_the_last_page() -> None:
    assert encode_token("", query="q") == ""
