"""The platform-wide identifier rules: channel ids and lease ids."""

from __future__ import annotations

import pytest

from headend.ids import CHANNEL_ID_MAX, is_channel_id, is_lease_id, new_lease_id


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("cctv1.cn", id="xmltv-style"),
        pytest.param("gdtv-pearl.gd.cn", id="labels-with-hyphens"),
        pytest.param("ch_1", id="underscore"),
        pytest.param("A" * CHANNEL_ID_MAX, id="longest"),
    ],
)
def test_accepts(text: str) -> None:
    assert is_channel_id(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("cctv1..cn", id="empty-label"),
        pytest.param("..", id="parent"),
        pytest.param(".cn", id="leading-dot"),
        pytest.param("cctv1.", id="trailing-dot"),
        pytest.param("-ch", id="leading-hyphen"),
        pytest.param("a/b", id="slash"),
        pytest.param("a b", id="space"),
        pytest.param("频道", id="non-ascii"),
        pytest.param("A" * (CHANNEL_ID_MAX + 1), id="too-long"),
    ],
)
def test_refuses(text: str) -> None:
    assert not is_channel_id(text)


def test_new_lease_ids_are_lease_ids_and_differ() -> None:
    ids = {new_lease_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(is_lease_id(i) for i in ids)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("0123456789abcde", id="short"),
        pytest.param("0123456789abcdef0", id="long"),
        pytest.param("0123456789ABCDEF", id="upper-case"),
        pytest.param("0123456789abcdeg", id="not-hex"),
        pytest.param("0123456789abcde\n", id="newline"),
    ],
)
def test_refuses_malformed_lease_ids(text: str) -> None:
    assert not is_lease_id(text)
