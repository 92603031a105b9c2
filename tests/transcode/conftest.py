"""Tiny real media made once per session with FFmpeg, and packaged outputs shared by tests
(the builders are in ``tests.support.media``)."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.media import Media, Packaged, conformance_profile, make_media
from transcode.package import package_vod, remux_vod
from transcode.settings import SourceSettings


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    """Make every test source once (a second or two of FFmpeg in total)."""
    return make_media(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="session")
def packaged_ladder(media: Media, tmp_path_factory: pytest.TempPathFactory) -> Packaged:
    """The 13 s clip through the one-process ladder with production GOP/segment rules."""
    dest = tmp_path_factory.mktemp("origin") / "vod" / "ladder"
    profile = conformance_profile()
    result = asyncio.run(package_vod(str(media.long_clip), dest, profile))
    return Packaged("ladder", result, profile)


@pytest.fixture(scope="session")
def packaged_remux(media: Media, tmp_path_factory: pytest.TempPathFactory) -> Packaged:
    """The 13 s clip stream-copied into HLS (its own 2 s GOPs, 6 s segments)."""
    dest = tmp_path_factory.mktemp("origin") / "vod" / "remux"
    result = asyncio.run(remux_vod(str(media.long_clip), dest))
    return Packaged("remux", result, None)


@pytest.fixture(scope="session")
def source_settings(media: Media) -> SourceSettings:
    """The production allow-lists, with the session's media folder as the one media root."""
    return SourceSettings(media_roots=(media.clip.parent.resolve(),))
