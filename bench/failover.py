"""Ping gap when the member holding a VPN session fails: our cluster vs a
real SoftEther 5.01 cluster (controller "controller functions only" + 2
members), for our vpnclient and for SoftEther's vpnclient. Needs root.

Everything runs inside a private network namespace (loopback only, removed
at the end, also on failure or Ctrl-C). A ping target B (a userspace host,
10.77.0.2) is connected on every member, so the client's pings never depend
on forwarding between members. The client A logs in at the controller; the
member it lands on is the victim (a run where A landed where no other member
is left is retried with a new session). Faults:

- kill:   SIGKILL (SoftEther: its watchdog first, so it is not respawned);
          restarted with its saved state after the run.
- freeze: SIGSTOP (SoftEther: watchdog and server); SIGCONT after the run.
- drain:  ClusterMemberDrain of the member (ours only: SoftEther has none),
          DRAIN_RATE sessions per second; undrained after the run. The
          graceful counterpart of kill: the member asks the client to go and
          it reconnects through the controller to another member.
- cut:    an nftables rule in the private namespace drops every TCP segment
          to and from the member's listener port: the client's connection
          to it goes silent, as when its link is down (no RST, no FIN).
          All servers share the namespace's loopback, so the member's own
          link to the controller (it connects out to the controller's port)
          stays up: this cuts the client's path, not the member from the
          cluster. Per-server namespaces with veths would cut both; a rule
          in a namespace we own is removed with it and touches nothing else.

Gap: pings every 50 ms; the longest time between two answered pings' sends
(our client: tools/vpnclient/gaps.py GapTracker; SoftEther's: `ping -O` on
its TAP, seq numbers x interval). A run ends 1 s after the first answer
sent after the fault, or after --limit seconds: then "did not resume".
Median of --runs (5; --quick: 2).

    sudo python3 bench/failover.py [--runs 5] [--quick] [--no-softether] [--faults kill,freeze,cut,drain]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tabulate import tabulate  # noqa: E402

from tools.vpnclient import frames as fr  # noqa: E402
from tools.vpnclient import probe  # noqa: E402
from tools.vpnclient.client import UserspaceClient  # noqa: E402
from tools.vpnclient.gaps import GapTracker  # noqa: E402
from tools.vpnclient.retry import RetryPolicy  # noqa: E402
from tools.vpndrill.lab.clusters import (  # noqa: E402
    BenchCluster, LabError, OurCluster, RealCluster, connect_hosts, real_client_account, inside_netns, bench_main,
    wait_link_up,
)
from tools.vpndrill.lab.softether import SoftEtherClient, SoftEtherLab, skip_reason, wait_account  # noqa: E402

HUB = "bench"
USERS = {"host": "pw-host", "load": "pw-load", "real": "pw-real"}
B_IP, A_IP = "10.77.0.2", "10.77.0.1"
RETRY = RetryPolicy(max_retries=50, base_s=0.2, cap_s=1.0)
INTERVAL_S = 0.05
FAULTS = ("kill", "freeze", "cut", "drain")
DRAIN_RATE = 20
NFT_TABLE = "vpnbench"


class Skip(Exception):
    """This client/cluster pair cannot be measured; the message says why."""


# ---- faults ------------------------------------------------------------------------------


def nft(script: str) -> None:
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True, timeout=10)


def inject(cluster: BenchCluster, victim: str, fault: str) -> Callable[[], None]:
    """Apply `fault` to server `victim`; returns the undo."""
    if fault == "kill":
        cluster.kill(victim)
        return lambda: cluster.restart(victim)
    if fault == "freeze":
        cluster.freeze(victim)
        return lambda: cluster.thaw(victim)
    if fault == "drain":
        cluster.drain(victim, DRAIN_RATE)
        return lambda: cluster.undrain(victim)
    port = cluster.servers()[victim].rsplit(":", 1)[1]
    nft(f"add table inet {NFT_TABLE}\n"
        f"add chain inet {NFT_TABLE} out {{ type filter hook output priority 0; }}\n"
        f"add rule inet {NFT_TABLE} out tcp dport {port} drop\n"
        f"add rule inet {NFT_TABLE} out tcp sport {port} drop\n")
    return lambda: nft(f"delete table inet {NFT_TABLE}\n")


# ---- ping targets ---------------------------------------------------------------------------

HOSTS_TRIES = 15


async def hosts_on_every_member(cluster: BenchCluster) -> dict[str, UserspaceClient]:
    """B on every member, connected afresh for each run: a fault moves the
    victim's B too (it reconnects through the controller to another member),
    so B set up once would be missing on the restarted or thawed member in
    the next run ("B does not answer ARP"). Waits (bounded) until a thawed or
    restarted member takes sessions again."""
    members = set(cluster.servers()) - {"controller"}
    hosts: dict[str, UserspaceClient] = {}
    for _ in range(HOSTS_TRIES):
        hosts = await connect_hosts(cluster, "host", USERS["host"], B_IP, RETRY)
        if set(hosts) >= members:
            return hosts
        await asyncio.gather(*(h.stop() for h in hosts.values()), return_exceptions=True)
        await asyncio.sleep(1.0)
    raise Skip(f"B could not be placed on every member (only on {', '.join(sorted(hosts)) or 'none'})")


async def stop_hosts(hosts: dict[str, UserspaceClient]) -> None:
    await asyncio.gather(*(h.stop() for h in hosts.values()), return_exceptions=True)


RunResult = tuple[float | None, str]


async def runs_per_fault(cluster: BenchCluster, faults: list[str], runs: int, limit_s: float,
                         one_run: Callable[[str], Awaitable[RunResult]]) -> dict:
    """`runs` runs of `one_run(fault)` per fault, each with fresh ping targets
    and bounded in time: {fault: {"gaps": [...], "victims": [...]}}. A run
    that cannot measure (Skip) or overruns is recorded as SKIP(reason)."""
    out: dict = {}
    for fault in faults:
        if fault == "drain" and not cluster.can_drain:
            out[fault] = {"gaps": [None], "victims": [f"SKIP({cluster.label} has no drain)"]}
            continue
        gaps: list[float | None] = []
        victims = []
        for _ in range(runs):
            try:
                hosts = await hosts_on_every_member(cluster)
                try:
                    gap, victim = await bounded(one_run(fault), limit_s + RUN_SLACK_S)
                finally:
                    await stop_hosts(hosts)
            except Skip as e:  # this run could not measure: say why, go on with the next
                gap, victim = None, f"SKIP({e})"
            gaps.append(gap)
            victims.append(victim)
            await asyncio.sleep(1.0)
        out[fault] = {"gaps": gaps, "victims": victims}
    return out


RUN_SLACK_S = 60.0


async def bounded(aw: Awaitable[RunResult], timeout_s: float) -> RunResult:
    """`aw`'s result, or Skip after `timeout_s` (with where it hung on stderr).
    asyncio.wait, not wait_for: a cancel the run swallows must not hang us."""
    task = asyncio.ensure_future(aw)
    await asyncio.wait([task], timeout=timeout_s)
    if task.done():
        return task.result()
    task.print_stack(file=sys.stderr)
    task.cancel()
    raise Skip(f"the run did not end within {timeout_s:.0f} s")


# ---- our client ---------------------------------------------------------------------------


async def our_client_run(cluster: BenchCluster, fault: str, limit_s: float) -> tuple[float | None, str]:
    """One run: (gap seconds or None if traffic did not resume, victim)."""
    a = UserspaceClient(cluster.controller, HUB, "load", USERS["load"], retry=RETRY, ip=A_IP)
    try:
        await a.wait_connected(30)
        victim = cluster.name_of(a.status.server)
        if victim == "controller":
            raise Skip("the controller kept the session (no redirect to a member): no member to fail")
        mac = await probe.arp_resolve(a, A_IP, B_IP, timeout_s=5)
        if mac is None:
            raise Skip(f"B does not answer ARP on {victim}")
        tracker = GapTracker(INTERVAL_S)
        resumed = asyncio.Event()
        fault_at = [float("inf")]

        async def collect() -> None:
            while True:
                try:
                    frame = await a.receive(INTERVAL_S)
                except asyncio.TimeoutError:
                    continue
                e = fr.parse_echo(frame)
                if e is not None and e.reply and e.ident == 0x4750 and tracker.answered(e.seq):
                    # A drain moves the session a moment after the order: resumed once it has moved.
                    if tracker._sent_at[e.seq] > fault_at[0] and (fault != "drain" or a.status.reconnects):
                        resumed.set()

        collector = asyncio.ensure_future(collect())
        undo: Callable[[], None] | None = None
        try:
            seq, t_end = 0, time.monotonic() + limit_s + 1.0
            while time.monotonic() < t_end and seq < 65536:
                if seq == int(1.0 / INTERVAL_S):
                    undo = await asyncio.to_thread(inject, cluster, victim, fault)
                    fault_at[0] = time.monotonic()
                if resumed.is_set():
                    t_end = min(t_end, time.monotonic() + 1.0)
                tracker.sent(seq, time.monotonic())
                await a.send_frames([fr.icmp_echo(a.mac, mac, A_IP, B_IP, ident=0x4750, seq=seq)], wait_s=0)
                seq += 1
                await asyncio.sleep(INTERVAL_S)
        finally:
            collector.cancel()
            if undo is not None:
                await asyncio.to_thread(undo)
        return (tracker.report().longest_gap_s if resumed.is_set() else None), victim
    finally:
        await a.stop()


async def measure_ours_client(cluster: BenchCluster, faults: list[str], runs: int, limit_s: float) -> dict:
    return await runs_per_fault(cluster, faults, runs, limit_s,
                                lambda fault: our_client_run(cluster, fault, limit_s))


# ---- SoftEther's client -------------------------------------------------------------------

SEQ = re.compile(r"icmp_seq=(\d+) ttl")


def real_client_run(cli: SoftEtherClient, cluster: BenchCluster, fault: str, limit_s: float) -> tuple[float | None, str]:
    # The last run's session may still be listed (a restarted or thawed member drops it late): the
    # victim would be that member, the fault would miss the client's session, the gap read 0.05 s.
    for _ in range(100):  # bounded: ~25 s
        if not any(c > 0 for c in cluster.sessions({"real"}).values()):
            break
        time.sleep(0.25)
    cli.must("AccountConnect", "a1")
    try:
        victim = "?"
        for _ in range(100):  # bounded: ~20 s; exactly one server holds the new session
            counts = cluster.sessions({"real"})
            holders = [n for n, c in counts.items() if c > 0]
            victim = holders[0] if len(holders) == 1 and counts[holders[0]] == 1 else "?"
            if victim != "?":
                break
            time.sleep(0.2)
        if victim == "controller":
            raise Skip("the controller kept the session (no redirect to a member): no member to fail")
        if victim == "?":
            raise Skip("the real client's session was not found on any server")
        if not wait_link_up("vpn_vpn1", 20):  # set down at the last AccountDisconnect, up once established
            raise Skip("the real client's TAP vpn_vpn1 did not come up")
        pinger = subprocess.Popen(["ping", "-n", "-O", "-i", str(INTERVAL_S), "-w", str(int(limit_s + 30)), B_IP],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        undo = None
        answered: list[int] = []
        try:
            assert pinger.stdout is not None
            t_start = time.monotonic()
            fault_seq: int | None = None
            t_end = t_start + limit_s + 3.0
            moved_seq: int | None = None  # a drain: the last answer when its session had left the victim
            check_at = 0.0
            for line in pinger.stdout:
                m = SEQ.search(line)
                if m:
                    answered.append(int(m.group(1)))
                now = time.monotonic()
                if fault_seq is None and now - t_start > 1.5 and answered:
                    undo = inject(cluster, victim, fault)
                    fault_seq = answered[-1] + 1
                    t_end = now + limit_s
                    moved_seq = None if fault == "drain" else fault_seq
                if fault_seq is not None and moved_seq is None and now >= check_at and answered:
                    check_at = now + 0.25
                    if cluster.sessions({"real"}).get(victim) == 0:
                        moved_seq = answered[-1]
                if moved_seq is not None and answered and answered[-1] > moved_seq + 2:
                    break
                if now > t_end:
                    break
        finally:
            pinger.kill()
            pinger.wait(10)
            if undo is not None:
                undo()
        if fault_seq is None:
            raise Skip(f"no ping answer from B on {victim} before the fault")
        resumed = bool(answered) and answered[-1] > fault_seq
        if not resumed:
            return None, victim
        steps = max(b - a for a, b in zip(answered, answered[1:]))
        return steps * INTERVAL_S, victim
    finally:
        cli.cmd("AccountDisconnect", "a1")
        wait_account(cli, "a1", lambda s: not s, 20)  # offline before the next AccountConnect
        time.sleep(1.0)


async def measure_real_client(selab: SoftEtherLab, cluster: BenchCluster, ns: str, faults: list[str], runs: int,
                              limit_s: float) -> dict:
    reason = skip_reason(need_client=True)
    if reason:
        raise Skip(reason)
    cli = await asyncio.to_thread(selab.client, ns, f"rc-{os.getpid()}-{cluster.label[:4]}")
    try:
        await asyncio.to_thread(real_client_account, cli, cluster, "real", USERS["real"], f"{A_IP}/24")
        return await runs_per_fault(cluster, faults, runs, limit_s, lambda fault: asyncio.to_thread(
            real_client_run, cli, cluster, fault, limit_s))
    finally:
        await asyncio.to_thread(cli.stop)


# ---- driver -------------------------------------------------------------------------------


def measure(cluster: BenchCluster, selab: SoftEtherLab, ns: str, args, faults: list[str]) -> dict[str, dict | str]:
    res: dict[str, dict | str] = {}

    async def both_clients() -> None:
        try:
            res["our vpnclient"] = await measure_ours_client(cluster, faults, args.runs, args.limit)
        except Skip as e:
            res["our vpnclient"] = str(e)
        try:
            res["SoftEther vpnclient"] = await measure_real_client(selab, cluster, ns, faults, args.runs, args.limit)
        except (Skip, LabError) as e:
            res["SoftEther vpnclient"] = str(e)[:300]

    asyncio.run(both_clients())
    return res


def summary(r: dict | str | None, fault: str) -> tuple[float | None, str]:
    if r is None:
        return None, "not run"
    if isinstance(r, str):
        return None, r
    runs = r.get(fault)
    if not runs:
        return None, "not run"
    ok = [g for g in runs["gaps"] if g is not None]
    skipped = sum(v.startswith("SKIP(") for v in runs["victims"])
    failed = sum(g is None for g in runs["gaps"]) - skipped
    detail = " ".join("SKIP" if v.startswith("SKIP(") else "NO-RESUME" if g is None else f"{g:.2f}"
                      for g, v in zip(runs["gaps"], runs["victims"]))
    detail += f" (victims {','.join(runs['victims'])})" + (f"; {failed} did not resume" if failed else "")
    return (statistics.median(ok) if ok else None), detail


def inner(args) -> int:
    logging.getLogger("vpnclient").setLevel(logging.CRITICAL)  # failed logins are counted, not logged one by one
    ns = inside_netns()
    assert ns is not None
    faults = [f for f in args.faults.split(",") if f]
    results: dict[str, dict[str, dict | str]] = {}
    notes = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    try:
        with OurCluster(tmp / "ours", [100, 100], HUB, USERS) as ours:
            results["ours"] = measure(ours, SoftEtherLab(tmp / "rc-ours"), ns, args, faults)
        if args.no_softether:
            notes.append("SoftEther cluster: skipped (--no-softether)")
        elif skip_reason():
            notes.append(f"SoftEther cluster: skipped: {skip_reason()}")
        else:
            with SoftEtherLab(tmp / "se") as selab:
                real = RealCluster(selab, [100, 100], HUB, USERS)
                results["se"] = measure(real, selab, ns, args, faults)
    finally:
        if args.keep:
            print(f"kept the servers' directories and logs in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for client in ("our vpnclient", "SoftEther vpnclient"):
        for fault in faults:
            om, od = summary(results.get("ours", {}).get(client), fault)
            sm, sd = summary(results.get("se", {}).get(client), fault)
            rows.append([client, fault, "missing" if om is None else f"{om:.2f}",
                         "missing" if sm is None else f"{sm:.2f}",
                         "" if om is None or sm is None or sm == 0 else f"{om / sm:.2f}", od, sd])
    print(f"\nPing gap (s) when the client's member fails, median of {args.runs} (ping every {INTERVAL_S * 1000:.0f} ms)")
    print(tabulate(rows, headers=["client", "fault", "ours", "SoftEther", "ours/SE", "ours: runs", "SoftEther: runs"],
                   maxcolwidths=[None, None, None, None, None, 45, 45]))
    for line in notes:
        print(line)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="runs per fault; the median is shown (default 5)")
    p.add_argument("--quick", action="store_true", help="2 runs per fault")
    p.add_argument("--faults", default=",".join(FAULTS), help="kill,freeze,cut,drain (default all)")
    p.add_argument("--limit", type=float, default=60.0, help="seconds a run waits for traffic to resume (default 60)")
    p.add_argument("--no-softether", action="store_true", help="our cluster only")
    p.add_argument("--keep", action="store_true", help="keep the temp dir with every server's logs (path printed)")
    args = p.parse_args()
    if args.quick:
        args.runs = min(args.runs, 2)
    return bench_main(__file__, "failover", lambda: inner(args), timeout_s=3600,
                      missing=None if shutil.which("nft") else "nft (nftables) not installed")


if __name__ == "__main__":
    sys.exit(main())
