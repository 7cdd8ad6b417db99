"""Points by the manual 3.9.5 formula, against values worked out by hand."""

import pytest

from controller.points import points


@pytest.mark.parametrize(
    ("sessions", "weight", "max_sessions", "expected"),
    [
        # idle: full FARM_BASE_POINT whatever the weight
        (0, 100, 100_000, 100_000),
        (0, 500, 100_000, 100_000),
        # M = 100 000: each session costs 100 / w points
        (1, 100, 100_000, 99_999),
        (100, 100, 100_000, 99_900),
        (100, 200, 100_000, 99_950),
        # 1 * 100 / 200 = 0.5 -> 99 999.5 truncated
        (1, 200, 100_000, 99_999),
        (3, 200, 100_000, 99_998),
        # 700 / 3 = 233.33.. -> 99 766.66.. truncated
        (7, 3, 100_000, 99_766),
        # weight 0 means 100
        (100, 0, 100_000, 99_900),
        # saturation: load capped at M
        (100_000, 100, 100_000, 0),
        (250_000, 100, 100_000, 0),
        (200_000, 200, 100_000, 0),
        # the manual's M = 4096: (4096 - 10) * 100000 / 4096 = 99 755.86
        (10, 100, 4096, 99_755),
        (1, 100, 4096, 99_975),
        # weight 300 with 3 sessions costs what weight 100 with 1 does
        (3, 300, 4096, 99_975),
        (2048, 100, 4096, 50_000),
        (5000, 100, 4096, 0),
        # M = 0 is treated as 1 (SoftEther avoids the division by zero)
        (0, 100, 0, 100_000),
        (1, 100, 0, 0),
    ],
)
def test_points_hand_computed(sessions, weight, max_sessions, expected):
    assert points(sessions, weight, max_sessions) == expected


def test_default_max_sessions_is_100000():
    assert points(1000, 100) == 99_000


def test_weight_200_costs_half_at_equal_load():
    for n in (2, 40, 1000):
        assert 100_000 - points(n, 200) == (100_000 - points(n, 100)) // 2


def test_more_sessions_never_more_points():
    previous = points(0, 150, 4096)
    for n in range(1, 7000, 7):
        current = points(n, 150, 4096)
        assert 0 <= current <= previous
        previous = current


@pytest.mark.parametrize("args", [(-1, 100), (1, -5), (1, 100, -1)])
def test_negative_input_rejected(args):
    with pytest.raises(ValueError):
        points(*args)
