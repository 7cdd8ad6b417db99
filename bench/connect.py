"""Connect times and session spread: our cluster vs a real SoftEther 5.01
cluster, both with a controller ("controller functions only") and members
on loopback, measured in one run. Needs root.

Everything runs inside a private network namespace (loopback only, removed
at the end): vpndrill's LocalCluster (our vpnd processes), the SoftEther
servers (tools/vpndrill/lab/softether.py) and the clients. Each cluster has
a static hub with users; a userspace host B (tools/vpnclient UserspaceClient
answering ARP and ping for 10.77.0.2) stays connected through the controller.

(a) connect -> first ping: a new session logs in at the controller (and
    follows its redirect), then ARPs and pings B until the first echo reply;
    the time from the start of the login to that reply. Clients: ours
    (UserspaceClient) and SoftEther's vpnclient (its TAP vpn_vpn1 with
    10.77.0.1 in the namespace, `ping -c 1 -w 15 -i 0.05`; timed from
    launching `vpncmd AccountConnect`, so ~0.1 s of vpncmd start-up counts).
(b) a burst of --burst (20) of our userspace clients started at once: time
    until every one got a ping reply from B, and the sessions per server
    against the members' weights.
(c) sessions set up per second through the controller, and the spread of a
    --big (1000) connect burst against weights 100/100/200 (goal: within
    ±5% of the weight share). SoftEther gets --big-softether (200).
    Each burst client connects from its own loopback address (127.1.x.y), as
    clients on many machines would: from one address a server takes at most
    256 connections (MAX_CONNECTIONS_PER_IP, as SoftEther).

Where each session landed is read from every server (EnumSession, sessions
it holds itself), so a table shows at once whether the controller
redirected. Median of --runs for (a); --quick: fewer runs, smaller bursts.

    sudo python3 bench/connect.py [--runs 5] [--quick] [--no-softether] [--weights 100,100]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tabulate import tabulate  # noqa: E402

from tools.vpnclient import probe  # noqa: E402
from tools.vpnclient.client import UserspaceClient  # noqa: E402
from tools.vpnclient.retry import RetryPolicy  # noqa: E402
from tools.vpndrill.lab.clusters import (  # noqa: E402
    BenchCluster, LabError, OurCluster, RealCluster, connect_hosts, real_client_account, describe, inside_netns, bench_main,
    wait_link_up, wait_sessions,
)
from tools.vpndrill.lab.softether import SoftEtherLab, skip_reason, wait_account  # noqa: E402

HUB = "bench"
USERS = {"host": "pw-host", "load": "pw-load", "real": "pw-real"}
B_IP, A_IP = "10.77.0.2", "10.77.0.1"
RETRY = RetryPolicy(max_retries=10, base_s=0.2, cap_s=1.0)
PING_WAIT_S = 15.0
BURST_TIMEOUT_S = 120.0
NOTES: list[str] = []


class Missing(Exception):
    """A figure could not be measured; the message says why."""


async def first_ping(cluster: BenchCluster, n: int) -> tuple[float, str, bool]:
    """One login at the controller + ARP + ping B: (seconds, server, redirected)."""
    t0 = time.monotonic()
    a = UserspaceClient(cluster.controller, HUB, "load", USERS["load"], retry=RETRY, ip=f"10.77.1.{n % 250 + 1}")
    try:
        await a.wait_connected(PING_WAIT_S)
        left = PING_WAIT_S - (time.monotonic() - t0)
        rtts = await probe.ping(a, a.ip or "", B_IP, count=1, timeout_s=max(left, 0.1))
        if rtts[0] is None:
            raise Missing(f"no ping reply from B within {PING_WAIT_S:g} s (session on {a.status.server})")
        return time.monotonic() - t0, cluster.name_of(a.status.server), a.status.redirected
    finally:
        await a.stop()


def source_ip(i: int) -> str:
    """Client i's own loopback source address (127.1.0.1, 127.1.0.2, ...): a
    burst of one machine's clients then measures the cluster, not the
    servers' limit of 256 connections per client IP (SoftEther's and ours)."""
    return f"127.1.{i // 250}.{i % 250 + 1}"


async def burst(cluster: BenchCluster, count: int, *, ping: bool) -> dict:
    """`count` userspace clients at once: time until all connected (and, with
    `ping`, until all got a reply from B); where they landed."""
    clients = [UserspaceClient(cluster.controller, HUB, "load", USERS["load"], retry=RETRY,
                               ip=f"10.78.{i // 250}.{i % 250 + 1}", local_address=source_ip(i))
               for i in range(count)]
    t0 = time.monotonic()
    connected_at: list[float] = []

    async def one(c: UserspaceClient) -> bool:
        await c.wait_connected(BURST_TIMEOUT_S)
        connected_at.append(time.monotonic() - t0)
        if not ping:
            return True
        rtts = await probe.ping(c, c.ip or "", B_IP, count=1, timeout_s=PING_WAIT_S)
        return rtts[0] is not None

    try:
        results = await asyncio.wait_for(asyncio.gather(*(one(c) for c in clients), return_exceptions=True),
                                         BURST_TIMEOUT_S + PING_WAIT_S)
        all_done = time.monotonic() - t0
        failed = sum(1 for r in results if r is not True)
        by_status: dict[str, int] = {}
        for c in clients:
            name = cluster.name_of(c.status.server)
            by_status[name] = by_status.get(name, 0) + 1
        counts = await asyncio.to_thread(wait_sessions, cluster, count + 1, {"load", "host"})
        return {"all_s": all_done, "connected_s": max(connected_at, default=float("nan")), "failed": failed,
                "by_status": by_status, "sessions": counts,
                "redirected": sum(c.status.redirected for c in clients)}
    finally:
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)


def spread_rows(label: str, by_server: dict[str, int], weights: list[int]) -> list[list]:
    """One row per server: sessions, share, weight share, deviation."""
    total = sum(by_server.values()) or 1
    wsum = sum(weights)
    rows = []
    for name, got in sorted(by_server.items()):
        share = got / total
        if name.startswith("member") and name[6:].isdigit() and int(name[6:]) <= len(weights):
            want = weights[int(name[6:]) - 1] / wsum
            dev = f"{100 * (share - want) / want:+.1f}%"
            want_s = f"{100 * want:.1f}%"
        else:
            want_s, dev = "0% (controller only)" if name == "controller" else "-", ""
        rows.append([label, name, got, f"{100 * share:.1f}%", want_s, dev])
    return rows


async def measure_cluster(cluster: BenchCluster, args, real_client: Callable[[], dict]) -> dict:
    """(a) and (b) with our client, then `real_client()` (in a thread) while B is still connected."""
    out: dict = {}
    hosts = await connect_hosts(cluster, "host", USERS["host"], B_IP, RETRY)
    try:
        out["host_on"] = " ".join(sorted(hosts))
        times, where = [], []
        for i in range(args.runs):
            try:
                t, server, redirected = await first_ping(cluster, i)
            except Missing as e:
                out["a_error"] = str(e)
                break
            times.append(t)
            where.append(f"{server}{'*' if redirected else ''}")
        out["a"] = times
        out["a_where"] = where
        out["b"] = await burst(cluster, args.burst, ping=True)
        out["real"] = await asyncio.to_thread(real_client)
    finally:
        await asyncio.gather(*(h.stop() for h in hosts.values()), return_exceptions=True)
    return out


async def measure_big(cluster: BenchCluster, count: int) -> dict:
    return await burst(cluster, count, ping=False)


def real_client_first_ping(selab: SoftEtherLab, cluster: BenchCluster, ns: str, runs: int) -> tuple[list[float], list[str]]:
    """SoftEther's vpnclient, TAP vpn_vpn1 (A_IP) in our namespace: AccountConnect -> first ping reply."""
    cli = selab.client(ns, f"rc-{os.getpid()}")
    try:
        real_client_account(cli, cluster, "real", USERS["real"], f"{A_IP}/24")
        times, where = [], []
        for _ in range(runs):
            subprocess.run(["ip", "neigh", "flush", "dev", "vpn_vpn1"], check=False, timeout=10)
            t0 = time.monotonic()
            cli.must("AccountConnect", "a1")
            # The client set its TAP down at the last AccountDisconnect and sets it up once the session
            # is established: a ping started before that exits at once with "Network is unreachable".
            code = 1
            if wait_link_up("vpn_vpn1", PING_WAIT_S - (time.monotonic() - t0)):
                left = max(1, int(PING_WAIT_S - (time.monotonic() - t0)))
                code = subprocess.run(["ping", "-n", "-q", "-c", "1", "-w", str(left), "-i", "0.05", B_IP],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      timeout=PING_WAIT_S + 5).returncode
            took = time.monotonic() - t0
            counts = cluster.sessions({"real"})
            cli.cmd("AccountDisconnect", "a1")
            wait_account(cli, "a1", lambda s: not s, 20)  # offline before the next AccountConnect
            time.sleep(1.0)  # and the servers dropped the old session
            if code != 0:
                where.append(f"FAILED(no ping in {PING_WAIT_S:g} s; {describe(counts)})")
                continue
            times.append(took)
            where.append(next((n for n, c in counts.items() if c > 0), "?"))
        return times, where
    finally:
        cli.stop()


def run_softether_real_client(cluster: BenchCluster, selab: SoftEtherLab, ns: str, runs: int) -> dict:
    reason = skip_reason(need_client=True)
    if reason:
        return {"error": reason}
    try:
        times, where = real_client_first_ping(selab, cluster, ns, runs)
        return {"a": times, "a_where": where}
    except (Missing, LabError) as e:
        return {"error": str(e)[:300]}


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt_s(v: float | None) -> str:
    return "missing" if v is None else f"{v:.3f}"


def ratio(ours: float | None, theirs: float | None, *, higher_is_better: bool = False) -> str:
    if ours is None or theirs is None or theirs == 0:
        return ""
    return f"{ours / theirs:.2f}"


def _cell(v: float | int | None) -> str:
    return "missing" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def inner(args) -> int:
    logging.getLogger("vpnclient").setLevel(logging.CRITICAL)  # failed logins are counted, not logged one by one
    ns = inside_netns()
    assert ns is not None
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1,000 sessions: sockets on both ends
    weights = [int(w) for w in args.weights.split(",")]
    big_weights = [100, 100, 200]
    res: dict[str, dict] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-connect-"))
    try:
        with OurCluster(tmp / "ours", weights, HUB, USERS) as ours:
            rc_lab = SoftEtherLab(tmp / "rc-ours")
            res["ours"] = asyncio.run(measure_cluster(
                ours, args, lambda: run_softether_real_client(ours, rc_lab, ns, args.runs)))
        with OurCluster(tmp / "ours-big", big_weights, HUB, USERS) as ours:
            res["ours_big"] = asyncio.run(measure_big(ours, args.big))
        if args.no_softether:
            NOTES.append("SoftEther: skipped (--no-softether)")
        elif skip_reason():
            NOTES.append(f"SoftEther: skipped: {skip_reason()}")
        else:
            try:  # a SoftEther cluster that does not come up must not lose our figures
                with SoftEtherLab(tmp / "se") as selab:
                    real = RealCluster(selab, weights, HUB, USERS)
                    res["se"] = asyncio.run(measure_cluster(
                        real, args, lambda: run_softether_real_client(real, selab, ns, args.runs)))
                with SoftEtherLab(tmp / "se-big") as selab:
                    real = RealCluster(selab, big_weights, HUB, USERS)
                    res["se_big"] = asyncio.run(measure_big(real, args.big_softether))
            except LabError as e:
                NOTES.append(f"SoftEther: not measured: {str(e)[:300]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(res, args, weights, big_weights)
    return 0


def report(res: dict[str, dict], args, weights: list[int], big_weights: list[int]) -> None:
    ours, se = res.get("ours", {}), res.get("se", {})
    o_real, s_real = ours.get("real", {}), se.get("real", {})
    print(f"\n(a) connect -> first ping reply through the controller, median of {args.runs} (s); "
          "where: server that held the session, * = redirected")
    rows = []
    for client, o, s in (("our vpnclient (userspace)", ours, se), ("SoftEther vpnclient (TAP)", o_real, s_real)):
        om, sm = med(o.get("a", [])), med(s.get("a", []))
        rows.append([client, fmt_s(om), fmt_s(sm), ratio(om, sm),
                     " ".join(o.get("a_where", [])) or o.get("a_error") or o.get("error", ""),
                     " ".join(s.get("a_where", [])) or s.get("a_error") or s.get("error", "")])
    print(tabulate(rows, headers=["client", "ours", "SoftEther", "ours/SE", "ours: where", "SoftEther: where"]))
    print(f"B (the ping target) on: ours {ours.get('host_on', '-')}, SoftEther {se.get('host_on', '-')}")

    print(f"\n(b) burst of {args.burst} userspace connects at once, members' weights {args.weights}")
    rows = []
    for label, key in (("all connected (s)", "connected_s"), ("all carried a ping (s)", "all_s"),
                       ("failed", "failed"), ("redirected", "redirected")):
        o, s = ours.get("b", {}).get(key), se.get("b", {}).get(key)
        rows.append([label, _cell(o), _cell(s), ratio(o, s) if key.endswith("_s") else ""])
    print(tabulate(rows, headers=["", "ours", "SoftEther", "ours/SE"]))
    spread = []
    for label, key in (("ours", "ours"), ("SoftEther", "se")):
        b = res.get(key, {}).get("b")
        if b:
            spread += spread_rows(label, b["by_status"], weights)
            NOTES.append(f"(b) {label}: sessions per server (EnumSession, incl. B): {describe(b['sessions'])}")
    print(tabulate(spread, headers=["cluster", "server", "sessions", "share", "weight share", "deviation"]))

    print("\n(c) sessions set up per second through the controller, and the spread against weights "
          f"{'/'.join(map(str, big_weights))}")
    rows, spread = [], []
    for label, key, n in (("ours", "ours_big", args.big), ("SoftEther", "se_big", args.big_softether)):
        b = res.get(key)
        if not b:
            continue
        ok = n - b["failed"]
        rows.append([label, n, b["failed"], f"{b['connected_s']:.2f}", f"{ok / b['connected_s']:.0f}",
                     b["redirected"]])
        spread += spread_rows(label, b["by_status"], big_weights)
        NOTES.append(f"(c) {label}: sessions per server (EnumSession): {describe(b['sessions'])}")
    print(tabulate(rows, headers=["cluster", "connects", "failed", "all connected (s)", "sessions/s", "redirected"]))
    ob, sb = res.get("ours_big"), res.get("se_big")
    if ob and sb:
        print(f"sessions/s ours/SoftEther: {((args.big - ob['failed']) / ob['connected_s']) / ((args.big_softether - sb['failed']) / sb['connected_s']):.2f}"
              f" (SoftEther burst is {args.big_softether}, ours {args.big})")
    print(tabulate(spread, headers=["cluster", "server", "sessions", "share", "weight share", "deviation"]))
    for line in NOTES:
        print(line)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="runs of (a); the median is shown (default 5)")
    p.add_argument("--quick", action="store_true", help="3 runs, burst 20, big bursts 300/100")
    p.add_argument("--burst", type=int, default=20, help="clients in the (b) burst (default 20)")
    p.add_argument("--big", type=int, default=1000, help="clients in our (c) burst (default 1000)")
    p.add_argument("--big-softether", type=int, default=200, help="clients in SoftEther's (c) burst (default 200)")
    p.add_argument("--weights", default="100,100", help="members' weights for (a) and (b) (default 100,100)")
    p.add_argument("--no-softether", action="store_true", help="measure our cluster only")
    args = p.parse_args()
    if args.quick:
        args.runs, args.big, args.big_softether = min(args.runs, 3), min(args.big, 300), min(args.big_softether, 100)
    return bench_main(__file__, "connect", lambda: inner(args), timeout_s=1800)


if __name__ == "__main__":
    sys.exit(main())
