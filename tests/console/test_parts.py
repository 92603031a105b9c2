"""The console's pure parts: the language choice, the chart geometry, and the thumbnail
route's answer while a channel has no picture."""

from __future__ import annotations

import pytest

from console.charts import HEIGHT, WIDTH, bar_chart
from console.i18n import CATALOGUE, choose, translator
from tests.support.console import ConsoleFace
from tests.support.tokens import Tokens
from tests.support.world import CARRIER, LIVE


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "chosen"),
    [
        pytest.param("zh", "en", "en", "zh", id="query-first"),
        pytest.param(None, "zh", "en-GB", "zh", id="then-cookie"),
        pytest.param("fr", None, "de, zh-CN;q=0.8, en;q=0.5", "zh", id="then-browser"),
        pytest.param(None, "xx", "en-US,zh;q=0.9", "en", id="browser-order"),
        pytest.param(None, None, None, "en", id="default"),
    ],
)
def test_the_language_choice(
    query: str | None, cookie: str | None, accept: str | None, chosen: str
) -> None:
    assert choose(query, cookie, accept) == chosen


def test_every_word_has_both_languages() -> None:
    for key, (en, zh) in CATALOGUE.items():
        assert en, key
        assert zh, key
        assert en != zh or key.startswith("app."), key
    assert translator("zh")("nav.channels") == "频道"
    assert translator("en")("no.such.key") == "no.such.key"


def test_bars_share_one_scale_inside_the_chart() -> None:
    chart = bar_chart([("00:00", 0), ("01:00", 5), ("02:00", 10), ("03:00", 5)], label_every=2)
    assert chart.top == 10
    heights = [bar.height for bar in chart.bars]
    assert heights[0] == 0
    assert heights[2] == 2 * heights[1] == 2 * heights[3]
    assert all(bar.y + bar.height == chart.baseline for bar in chart.bars)
    assert all(0 <= bar.x and bar.x + bar.width <= WIDTH for bar in chart.bars)
    assert chart.baseline < HEIGHT
    assert [bar.label for bar in chart.bars] == ["00:00", "", "02:00", ""]
    assert bar_chart([]).bars == ()


async def test_a_channel_without_a_picture_gets_the_placeholder(
    console: ConsoleFace, tokens: Tokens
) -> None:
    async with console.operator() as op:
        await op.login(await tokens())
        answer = await op.get(f"/channels/{LIVE}/thumbnail.jpg")
        assert answer.status == 200, answer.text
        assert answer.headers["Content-Type"].startswith("image/svg+xml")
        assert answer.headers["Cache-Control"].startswith("private, max-age=")
    async with console.operator() as op:
        await op.login(await tokens(f"carrier:{CARRIER}"))
        assert (await op.get(f"/channels/{LIVE}/thumbnail.jpg")).status == 403
