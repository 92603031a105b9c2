"""The extended M3U lineup."""

from __future__ import annotations

import re

from cdn_ctl.lineup import LineupEntry, render_m3u

_ATTR = re.compile(r'([a-z-]+)="([^"]*)"')


def _parse(text: str) -> list[tuple[dict[str, str], str, str]]:
    lines = text.splitlines()
    assert lines[0].startswith("#EXTM3U ")
    out = []
    for info, url in zip(lines[1::2], lines[2::2], strict=True):
        assert info.startswith("#EXTINF:-1 ")
        head, _, title = info.rpartition(",")
        out.append((dict(_ATTR.findall(head)), title, url))
    return out


def test_lineup_has_every_attribute_players_read() -> None:
    entries = [
        LineupEntry("gdtv.cn", 2, 'GDTV "Pearl"', "http://logo/gd.png", "Provincial", 0),
        LineupEntry("cctv1.cn", 1, "CCTV-1 综合", "http://logo/1.png", "National", 7),
    ]
    text = render_m3u(
        entries, base_url="http://fd", guide_url="http://fd/guide.xml.gz", query="token=abc"
    )
    assert text.startswith('#EXTM3U x-tvg-url="http://fd/guide.xml.gz?token=abc"\n')
    (first, title1, url1), (second, _, url2) = _parse(text)
    assert first == {
        "tvg-id": "cctv1.cn",
        "tvg-name": "CCTV-1 综合",
        "tvg-logo": "http://logo/1.png",
        "tvg-chno": "1",
        "group-title": "National",
        "catchup": "default",
        "catchup-days": "7",
        "catchup-source": "http://fd/catchup/cctv1.cn/master.m3u8?token=abc&utc={utc}&utcend={utcend}",
    }
    assert title1 == "CCTV-1 综合"
    assert url1 == "http://fd/live/cctv1.cn/master.m3u8?token=abc"
    assert second["tvg-name"] == "GDTV 'Pearl'"
    assert "catchup" not in second
    assert url2 == "http://fd/live/gdtv.cn/master.m3u8?token=abc"


def test_lineup_without_query_uses_plain_urls() -> None:
    text = render_m3u(
        [LineupEntry("a.cn", 1, "A", "", "G", 3)], base_url="http://fd", guide_url="http://fd/g"
    )
    ((attrs, _, url),) = _parse(text)
    assert attrs["catchup-source"] == "http://fd/catchup/a.cn/master.m3u8?utc={utc}&utcend={utcend}"
    assert url == "http://fd/live/a.cn/master.m3u8"
