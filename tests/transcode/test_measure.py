"""``bits_per_second``: the one BANDWIDTH / AVERAGE-BANDWIDTH rounding (VOD, live, catch-up)."""

from __future__ import annotations

import pytest

from transcode.measure import bits_per_second


@pytest.mark.parametrize(
    ("sizes", "durations", "expected"),
    [
        # 1000 B in 3 s is 2666.67 bit/s: truncating would declare less than the segment
        # carries, which RFC 8216 forbids for BANDWIDTH; both round up.
        pytest.param([1000], [3.0], (2667, 2667), id="rounds-up-not-down"),
        pytest.param([1000, 500], [3.0, 3.0], (2667, 2000), id="peak-of-one-average-of-all"),
        pytest.param([600, 600], [2.0, 2.0], (2400, 2400), id="exact-rates-unchanged"),
        pytest.param([0], [2.0], (1, 1), id="never-below-one"),
        pytest.param([1000, 9999], [2.0, 0.0], (4000, 4000), id="untimed-segment-skipped"),
        pytest.param([], [], (1, 1), id="nothing-measured"),
    ],
)
def test_bandwidth_rounds_up_and_average_stays_within_peak(
    sizes: list[int], durations: list[float], expected: tuple[int, int]
) -> None:
    peak, average = bits_per_second(sizes, durations)

    assert (peak, average) == expected
    assert 1 <= average <= peak
