"""A drill's report as tables (the default), JSON (`--json`) or a PNG (`--plot`).

Every form ends with the same two figures: sessions back and sessions lost.
The plot (matplotlib, imported only when asked for, with the Agg backend so
it needs no display) has two panels sharing the time axis: sessions per
server over time, and one row per session with its down intervals as red
bars; every event is a dashed vertical line labelled with its action and
target.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tabulate import tabulate

from tools.vpndrill.timeline import EventReport, Report

EVENT_HEADERS = ["t s", "event", "target", "detection s", "eviction s", "listed s", "sessions", "gap median s", "gap p95 s",
                 "gap max s", "lost", "traffic lost"]


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def event_row(e: EventReport) -> list[str]:
    traffic = f"{e.traffic_lost}/{e.traffic_sent}" if e.traffic_sent else "-"
    return [f"{e.at:.2f}", e.action, e.target, _s(e.detection_s), _s(e.eviction_s), _s(e.listed_s),
            str(e.affected),
            _s(e.gap_median_s), _s(e.gap_p95_s), _s(e.gap_max_s), str(e.lost), traffic]


def tables(report: Report, title: str, failures: list[str] | None = None) -> str:
    out = [f"{title}: {report.sessions} sessions, {len(report.events)} events, {report.duration_s:.1f} s", ""]
    if report.events:
        out.append(tabulate([event_row(e) for e in report.events], headers=EVENT_HEADERS))
    else:
        out.append("(no event)")
    for f in failures or []:
        out.append(f"FAILED: {f}")
    out += ["", f"connected at the end: {report.connected_at_end}/{report.sessions}",
            f"sessions back: {report.back}", f"sessions lost: {report.lost}"]
    return "\n".join(out)


def as_dict(report: Report, title: str, failures: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    events = []
    for e in report.events:
        d = asdict(e)
        d.update(gap_median_s=e.gap_median_s, gap_p95_s=e.gap_p95_s, gap_max_s=e.gap_max_s)
        events.append(d)
    return {"scenario": title, "ok": not failures and report.lost == 0, "failures": failures or [],
            "duration_s": report.duration_s, "sessions": report.sessions,
            "connected_at_end": report.connected_at_end, "events": events,
            "gaps": {k: [list(g) for g in v] for k, v in report.gaps.items() if v}, **extra,
            "sessions_back": report.back, "sessions_lost": report.lost}


def as_json(report: Report, title: str, failures: list[str] | None = None, **extra: Any) -> str:
    return json.dumps(as_dict(report, title, failures, **extra), indent=2)


def emit(report: Report, title: str, *, as_json_: bool, plot_path: Path | None,
         failures: list[str] | None = None, **extra: Any) -> None:
    """The report on stdout (JSON or tables), and the PNG if asked for."""
    print(as_json(report, title, failures, **extra) if as_json_ else tables(report, title, failures))
    if plot_path is not None:
        plot(report, title, plot_path)
        print(f"plot: {plot_path}", file=sys.stderr)


def plot(report: Report, title: str, path: Path) -> None:
    """Write the PNG (ImportError with a hint if matplotlib is missing)."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'vpncluster[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sessions = sorted(report.gaps)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(11, 4 + 0.12 * len(sessions)),
                                      gridspec_kw={"height_ratios": [2, max(1, len(sessions) / 12)]})
    servers = sorted({s for _, c in report.counts for s in c})
    times = [t for t, _ in report.counts]
    for server in servers:
        top.step(times, [c.get(server, 0) for _, c in report.counts], where="post", label=server)
    top.set_ylabel("sessions")
    top.set_title(f"{title}: sessions per server (back {report.back}, lost {report.lost})")
    if servers:
        top.legend(loc="upper right", fontsize="small")
    for row, key in enumerate(sessions):
        bars = [(a, max(b - a, 0.02)) for a, b in report.gaps[key]]
        bottom.broken_barh(bars, (row - 0.4, 0.8), color="tab:red")
    bottom.set_yticks(range(len(sessions)))
    bottom.set_yticklabels(sessions, fontsize=6)
    bottom.set_ylim(-1, max(1, len(sessions)))
    bottom.set_ylabel("session down")
    bottom.set_xlabel("seconds")
    for ax in (top, bottom):
        for e in report.timeline:
            ax.axvline(e.at, color="grey", linestyle="--", linewidth=0.8)
    for e in report.timeline:
        top.annotate(f"{e.action} {e.target}", (e.at, 1), xycoords=("data", "axes fraction"), rotation=90,
                     fontsize=7, va="top", ha="right")
    if report.duration_s > 0:
        bottom.set_xlim(0, report.duration_s)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
