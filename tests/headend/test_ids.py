"""The platform-wide channel id rule."""

from __future__ import annotations

import pytest

from headend.ids import CHANNEL_ID_MAX, is_channel_id


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
