"""Points: how much room a server has for one more session.

Algorithm (manual 3.9.5, SoftEther Server.c `SiCalcPoint`), with M the
server's session limit, n its current sessions and w its weight
("performance standard ratio", 0 means the default 100):

    points = floor((M - min(n * 100 / w, M)) * 100000 / M)

computed in binary floating point and then truncated, exactly as SoftEther
does it with doubles, so figures match a real cluster digit for digit.

Numbers: an idle server has 100 000 (`FARM_BASE_POINT`); with M = 100 000
(SoftEther 5.01's open-source cap, our default) every session costs
100 / w points, so weight 200 pays half as much per session as weight 100;
a server at n * 100 / w >= M has 0. The manual's formula uses M = 4096.

Invariants: the result is an int in [0, 100000]; more sessions never give
more points; a higher weight never gives fewer points.
"""

from __future__ import annotations

FARM_BASE_POINT = 100_000
DEFAULT_WEIGHT = 100
DEFAULT_MAX_SESSIONS = 100_000


def points(sessions: int, weight: int, max_sessions: int = DEFAULT_MAX_SESSIONS) -> int:
    """Return the points of a server with `sessions` sessions.

    `weight` 0 means 100 (SoftEther's default); `max_sessions` 0 is treated
    as 1 to avoid a division by zero, as SoftEther does. Negative inputs
    raise ValueError (they can only come from a bug or a forged report).
    """
    if sessions < 0 or weight < 0 or max_sessions < 0:
        raise ValueError(f"negative input: sessions={sessions} weight={weight} max_sessions={max_sessions}")
    w = float(weight or DEFAULT_WEIGHT)
    m = float(max_sessions or 1)
    load = min(float(sessions) * 100.0 / w, m)
    return int((m - load) * float(FARM_BASE_POINT) / m)
