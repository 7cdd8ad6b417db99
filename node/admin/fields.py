"""Shared renderings of SoftEther's output structures."""

from __future__ import annotations

TRAFFIC_KEYS = ("BroadcastBytes", "BroadcastCount", "UnicastBytes", "UnicastCount")


def traffic(counters: dict[str, int] | None, prefix: str = "") -> dict[str, int]:
    """SoftEther's TRAFFIC as JSON keys: `{prefix}Recv.BroadcastBytes_u64`, ...

    `counters` uses keys like "Recv.UnicastBytes"; missing ones are 0.
    """
    counters = counters or {}
    out: dict[str, int] = {}
    for direction in ("Recv", "Send"):
        for key in TRAFFIC_KEYS:
            name = f"{direction}.{key}"
            out[f"{prefix}{name}_u64"] = int(counters.get(name, 0))
    return out
