"""`vpndrill observe --server HOST:PORT`: record a running cluster's timeline, touching nothing.

Every `--interval` seconds it reads the controller's admin API (JSON-RPC,
the same on vpncluster and on a real SoftEther VPN Server 5.01; read-only
calls only): EnumFarmMember (the member list, and each server's own session
count), GetFarmInfo once per new member id (its address and port, which
name it), EnumHub and EnumSession of each hub (every session of the
cluster, RemoteHostname naming the server holding it; read before the
member list). A member that
leaves the list is a "left" event, one that comes (back) a "joined" one;
vpncluster's drain states show as "draining", "drained" and "undrained".
At the end (Ctrl-C, SIGTERM or `--for`), sessions are given stable keys
across reconnects (timeline.resolve_sessions) and the report is made by
the same Timeline as `vpndrill run`: per event, eviction, takeover gaps,
sessions lost (a member's leaving and its drain each report the moves
seen from then on). The fault's instant is not seen from outside: a "left"
event's detection runs from the first session seen going away to the
member leaving the list.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.vpnctl.client import AdminClient, AdminError
from tools.vpndrill import report as rp
from tools.vpndrill.drill import Progress
from tools.vpndrill.timeline import SessionRow, Timeline, resolve_sessions

log = logging.getLogger("vpndrill")
MAX_POLLS = 10_000_000
DEFAULT_FOR_S = 86400.0


@dataclass
class ClusterView:
    """One poll of the controller, names resolved."""
    listed: set[str]
    counts: dict[str, int]
    sessions: list[SessionRow]
    drains: dict[str, str] = field(default_factory=dict)
    """Member -> "draining" or "drained" (vpncluster's graceful drain; SoftEther has none)."""


@dataclass
class Observer:
    client: AdminClient
    _label_of_id: dict[int, str] = field(default_factory=dict)
    _host_of_label: dict[str, str] = field(default_factory=dict)

    def poll(self) -> ClusterView:
        # Sessions first, then the member list: a session moved by a drain
        # or an eviction is never seen in a poll before the one that shows
        # its cause, so the timeline can attribute it.
        found: list[tuple[str, dict]] = []
        for hub in self.client.call("EnumHub")["HubList"]:
            try:
                rows = self.client.call("EnumSession", {"HubName_str": hub["HubName_str"]})["SessionList"]
            except AdminError as exc:  # a dynamic hub stopping between the two calls
                log.debug("EnumSession %s: %s", hub["HubName_str"], exc)
                continue
            found += [(hub["HubName_str"], s) for s in rows]
        listed, counts, drains = set(), {}, {}
        for row in self.client.call("EnumFarmMember")["FarmMemberList"]:
            label = self._label(row)
            listed.add(label)
            counts[label] = int(row.get("NumSessions_u32", 0))
            if row.get("DrainState_str"):
                drains[label] = row["DrainState_str"]
        by_host: dict[str, list[str]] = {}
        for label in listed:
            by_host.setdefault(self._host_of_label.get(label, ""), []).append(label)
        sessions = []
        for hub_name, s in found:
            if s.get("RemoteSession_bool"):
                host = s.get("RemoteHostname_str", "")
                labels = by_host.get(host, [])
                server = labels[0] if len(labels) == 1 else host or "?"
            else:
                server = "controller"
            sessions.append(SessionRow(f"{hub_name}/{s['Name_str']}", s.get("Username_str", ""),
                                       s.get("ClientIP_ip") or s.get("Ip_ip", ""), server))
        return ClusterView(listed, counts, sessions, drains)

    def _label(self, row: dict) -> str:
        if row.get("Controller_bool"):
            self._host_of_label.setdefault("controller", "")
            return "controller"
        mid = int(row["Id_u32"])
        if mid not in self._label_of_id:
            try:
                info = self.client.call("GetFarmInfo", {"Id_u32": mid})
                ports = info.get("Ports_u32") or [0]
                label = f"{info.get('Ip_ip') or row.get('Ip_ip')}:{ports[0]}"
            except AdminError:
                label = f"{row.get('Hostname_str', '?')}#{mid}"
            self._label_of_id[mid] = label
            self._host_of_label[label] = row.get("Hostname_str", "")
        return self._label_of_id[mid]


def _password(path: Path | None) -> str:
    """As vpnctl: the file's first line, else $VPNCTL_PASSWORD, else empty."""
    if path is not None:
        lines = path.read_text().splitlines()
        return lines[0] if lines else ""
    return os.environ.get("VPNCTL_PASSWORD", "")


def observe(args: argparse.Namespace) -> int:
    host, _, port = args.server.rpartition(":")
    if not host or not port.isdigit():
        print(f"vpndrill: --server {args.server!r}: expected HOST:PORT", file=sys.stderr)
        return 2
    try:
        password = _password(args.password_file)
    except OSError as exc:
        print(f"vpndrill: cannot read --password-file: {exc.strerror or exc}", file=sys.stderr)
        return 2
    progress = Progress()
    timeline = Timeline()
    samples: list[tuple[float, list[SessionRow]]] = []
    origin = time.monotonic()
    limit = args.for_s if args.for_s is not None else DEFAULT_FOR_S
    error = None
    previous: set[str] | None = None
    drains: dict[str, str] = {}
    client = AdminClient(host.strip("[]"), int(port), password, connect_timeout_s=2.0, read_timeout_s=10.0)
    observer = Observer(client)
    stopped: list[str] = []

    def stop(signum: int, frame: object) -> None:  # the report is made after Ctrl-C too
        stopped.append(signal.Signals(signum).name)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for _ in range(MAX_POLLS):
            now = time.monotonic() - origin
            if now >= limit or stopped:
                break
            try:
                view = observer.poll()
            except AdminError as exc:
                if previous is None:
                    error = f"{args.server}: {exc}"
                    break
                log.warning("poll failed: %s", exc)
                time.sleep(args.interval)
                continue
            now = time.monotonic() - origin
            timeline.members(now, view.listed)
            timeline.counts(now, view.counts)
            samples.append((now, view.sessions))
            if previous is not None:
                for label in sorted(previous - view.listed):
                    timeline.event(now, "left", label)
                    progress.line(f"{now:7.2f} s  {label} left the member list")
                for label in sorted(view.listed - previous):
                    timeline.event(now, "joined", label)
                    progress.line(f"{now:7.2f} s  {label} joined")
            else:
                progress.line(f"watching {args.server}: " + ", ".join(sorted(view.listed)))
            for label in sorted(set(drains) | set(view.drains)):
                state = view.drains.get(label, "undrained")
                if state != drains.get(label, "undrained"):
                    timeline.event(now, state, label)
                    progress.line(f"{now:7.2f} s  {label} {state}")
            previous, drains = view.listed, view.drains
            progress.status(f"sessions: {len(view.sessions)}  " + " ".join(
                f"{k}={v}" for k, v in sorted(view.counts.items())), f"{now:6.1f} s  ")
            time.sleep(max(0.0, args.interval - (time.monotonic() - origin - now)))
    finally:
        client.close()
        progress.done()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the report is being made: let it finish
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if stopped:
        progress.line(f"stopped by {stopped[0]}")
    if error is not None:
        print(f"vpndrill: {error}", file=sys.stderr)
        return 1
    resolved, moves = resolve_sessions(samples)
    for t, where in resolved:
        timeline.sessions(t, where)
    timeline.moves(moves)
    timeline.end(time.monotonic() - origin)
    report = timeline.report()
    title = f"observe {args.server}"
    rp.emit(report, title, as_json_=args.json, plot_path=args.plot)
    return 0

