"""TCP throughput through one VPN session: our vpnd vs a real SoftEther server
vs the plain veth path, measured in one run with iperf3. Needs root.

Topology (tools/vpndrill/lab/star.py `VpnStar`, offloads off on every veth):

    ns A: veth 10.75.0.2 ---- ns S: Linux bridge 10.75.0.1 ---- veth 10.75.0.3 :ns B
          TAP  10.76.0.1 (vpnclient --tap, one VPN session to the server in ns S)
                                 ns S: hub "lab" local bridge -- veth 10.76.0.2 :ns B

(a) ours:      iperf3 A -> 10.76.0.2: our vpnclient -> OUR vpnd's hub -> local bridge -> B
(b) veth:      iperf3 A -> 10.75.0.3: veth, Linux bridge, veth (the physical limit)
(c) softether: as (a) with Debian's SoftEther VPN Server 5.01 instead of vpnd
               (the same client, so the servers are compared)
(d) real:      as (c) with SoftEther's own vpnclient (its TAP vpn_vpn1 in ns A),
               the all-SoftEther reference

Each figure is the median of --runs iperf3 runs of --time seconds (TCP,
receiver side). With --profile, py-spy samples our vpnd and our vpnclient
during one extra (a) run, and our vpnclient during one extra (c) run
("vpnclient_c"); the top functions by own time are printed.
A scenario that cannot run (no SoftEther packages, vpnd without VPN
sessions) is reported as missing, with the reason; the others still run.

    sudo python3 bench/throughput.py [--time 5] [--runs 3] [--profile] [--no-softether]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tools.vpndrill.cluster import DrillError, stop_pid  # noqa: E402
from tools.vpndrill.lab.netns import Lab, root_skip_reason  # noqa: E402
from tools.vpndrill.lab.softether import LabError, SoftEtherLab, skip_reason  # noqa: E402
from tools.vpndrill.lab.star import (  # noqa: E402
    HOST_B, HUB, SERVER_IP, TAP_A, TAP_B, USERS, VpnStar, wait_connected,
)

IPERF_PORT = 5201
OURS = "(a) ours: our vpnclient -> our vpnd"
VETH = "(b) veth (physical limit)"
SOFTETHER = "(c) our vpnclient -> SoftEther 5.01 server"
REAL_CLIENT = "(d) SoftEther client -> SoftEther server"


class Missing(Exception):
    """A scenario could not be measured; the message says why."""


def iperf(lab: Lab, ns: str, target: str, seconds: int, runs: int) -> list[float]:
    """Mbit/s received, one value per run."""
    rates = []
    for _ in range(runs):
        res = lab.run(ns, ["iperf3", "-c", target, "-p", str(IPERF_PORT), "-t", str(seconds), "-J"],
                      timeout=seconds + 30, check=False)
        try:
            doc = json.loads(res.stdout)
            rates.append(doc["end"]["sum_received"]["bits_per_second"] / 1e6)
        except (ValueError, KeyError) as e:
            raise Missing(f"iperf3 to {target} failed: {res.stderr.strip() or res.stdout[-300:]} ({e})") from None
    return rates


def iperf_star(lab: Lab, tmp: Path) -> VpnStar:
    """The topology of the module docstring, with an iperf3 server in ns B."""
    star = VpnStar(lab, tmp)
    star.lan = star.add_lan()
    lab.popen(star.ns_b, ["iperf3", "-s", "-p", str(IPERF_PORT)])
    time.sleep(0.3)
    return star


def reachable(lab: Lab, ns: str, target: str) -> None:
    res = lab.run(ns, ["ping", "-c", "2", "-i", "0.2", "-W", "3", target], check=False)
    if res.returncode != 0:
        raise Missing(f"{target} not reachable from ns A: {res.stdout[-200:]}")


def flush_neighbours(star: VpnStar) -> None:
    """A new TAP device has a new MAC: forget the old one in both hosts."""
    for ns in (star.ns_a, star.ns_b):
        star.lab.run(ns, ["ip", "neigh", "flush", "all"], check=False)


def connect_client(star: VpnStar, tmp: Path) -> subprocess.Popen:
    flush_neighbours(star)
    status, proc = star.start_client(star.ns_a, "alice", f"{TAP_A}/24")
    try:
        wait_connected(status, tmp)
    except LabError as e:
        raise Missing(f"vpnclient did not connect: {str(e)[:400]}") from None
    reachable(star.lab, star.ns_a, TAP_B)
    return proc


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None:
        stop_pid(proc)


def profile(pids: dict[str, int], seconds: int, out_dir: Path) -> dict[str, subprocess.Popen]:
    """Start py-spy on each pid (raw collapsed stacks); returns the samplers."""
    samplers = {}
    for name, pid in pids.items():
        out = out_dir / f"{name}.folded"
        samplers[name] = subprocess.Popen(
            ["py-spy", "record", "--format", "raw", "--nonblocking", "-r", "200", "-d", str(seconds),
             "-o", str(out), "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return samplers


def top_functions(folded: Path, n: int = 8) -> list[tuple[str, float]]:
    """(function, % of samples spent in it, not in its callees) from a collapsed-stack file."""
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.split(";")[-1]
        own[leaf] += int(count)
        total += int(count)
    return [(f, 100.0 * c / total) for f, c in own.most_common(n)] if total else []


NOTES: list[str] = []


def note_bursts(tmp: Path, label: str) -> None:
    """Frames per block burst our client sent (from its final status file)."""
    try:
        doc = json.loads((tmp / "alice.status.json").read_text())
    except (OSError, ValueError):
        return
    if doc.get("bursts_out"):
        NOTES.append(f"{label}: vpnclient sent {doc['frames_out']} frames in {doc['bursts_out']} bursts "
                     f"({doc['frames_out'] / doc['bursts_out']:.2f} frames/burst), received {doc['frames_in']}")


def profiled_run(star: VpnStar, tmp: Path, args, pids: dict[str, int]) -> dict[str, list[tuple[str, float]]]:
    """One more iperf3 run with py-spy sampling `pids`; top functions of each."""
    if shutil.which("py-spy") is None:
        return {"(py-spy not installed: pip install py-spy)": []}
    samplers = profile(pids, args.time, tmp)
    time.sleep(0.5)
    iperf(star.lab, star.ns_a, TAP_B, args.time, 1)
    prof = {}
    for name, sampler in samplers.items():
        sampler.wait(args.time + 30)
        path = tmp / f"{name}.folded"
        prof[name] = top_functions(path) if path.exists() else []
    return prof


def measure_ours(star: VpnStar, tmp: Path, args) -> tuple[list[float], dict[str, list[tuple[str, float]]]]:
    lan = star.lan
    vpnd = client = None
    try:
        try:
            vpnd = star.start_vpnd(bridge=lan)
        except (LabError, DrillError) as e:
            raise Missing(f"vpnd could not be set up: {str(e)[:300]}") from None
        client = connect_client(star, tmp)
        rates = iperf(star.lab, star.ns_a, TAP_B, args.time, args.runs)
        prof = profiled_run(star, tmp, args, {"vpnd": vpnd.proc.pid, "vpnclient": client.pid}) if args.profile else {}
        return rates, prof
    finally:
        stop(client)
        note_bursts(tmp, "(a)")
        if vpnd is not None:
            vpnd.stop()


def measure_softether(star: VpnStar, tmp: Path, args, profiles: dict) -> dict[str, list[float] | str]:
    """(c) our client and (d) SoftEther's own client, each to the real server."""
    reason = skip_reason()
    if reason:
        raise Missing(reason)
    out: dict[str, list[float] | str] = {}
    client = None
    with SoftEtherLab() as selab:
        srv = star.start_softether(selab, bridge=star.lan)
        try:
            client = connect_client(star, tmp)
            out[SOFTETHER] = iperf(star.lab, star.ns_a, TAP_B, args.time, args.runs)
            if args.profile:
                profiles.update(profiled_run(star, tmp, args, {"vpnclient_c": client.pid}))
        except Missing as e:
            out[SOFTETHER] = str(e)
        finally:
            stop(client)
            note_bursts(tmp, "(c)")
        if args.no_real_client or skip_reason(need_client=True):
            out[REAL_CLIENT] = "skipped" if args.no_real_client else str(skip_reason(need_client=True))
            return out
        try:
            out[REAL_CLIENT] = measure_real_client(star, selab, srv.port, args)
        except Missing as e:
            out[REAL_CLIENT] = str(e)
    return out


def measure_real_client(star: VpnStar, selab: SoftEtherLab, port: int, args) -> list[float]:
    """SoftEther's vpnclient in ns A (its TAP vpn_vpn1 gets TAP_A) to the real server."""
    cli = selab.client(star.ns_a, f"rc-{star.lab.tag}")
    try:
        cli.must("NicCreate", "vpn1")
        cli.must("AccountCreate", "a1", f"/SERVER:{SERVER_IP}:{port}", f"/HUB:{HUB}", "/USERNAME:alice",
                 "/NICNAME:vpn1")
        cli.must("AccountPasswordSet", "a1", f"/PASSWORD:{USERS['alice']}", "/TYPE:standard")
        star.lab.addr(star.ns_a, "vpn_vpn1", f"{TAP_A}/24")
        flush_neighbours(star)
        cli.must("AccountConnect", "a1")
        for _ in range(100):
            res = star.lab.run(star.ns_a, ["ping", "-c", "1", "-W", "1", TAP_B], check=False)
            if res.returncode == 0:
                break
        else:
            raise Missing("the real client's session did not carry a ping")
        return iperf(star.lab, star.ns_a, TAP_B, args.time, args.runs)
    finally:
        cli.stop()


def fmt(rates: list[float] | str) -> tuple[str, str]:
    if isinstance(rates, str):
        return "missing", rates
    return f"{statistics.median(rates):.0f}", " ".join(f"{r:.0f}" for r in rates)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--time", type=int, default=5, help="seconds per iperf3 run (default 5)")
    p.add_argument("--runs", type=int, default=3, help="iperf3 runs per scenario; the median is shown (default 3)")
    p.add_argument("--profile", action="store_true", help="sample vpnd and vpnclient with py-spy in one more run")
    p.add_argument("--no-softether", action="store_true", help="skip scenarios (c) and (d)")
    p.add_argument("--no-real-client", action="store_true", help="skip scenario (d)")
    args = p.parse_args()
    reason = root_skip_reason() or (None if shutil.which("iperf3") else "iperf3 not installed")
    if reason:
        print(f"throughput: cannot run: {reason}", file=sys.stderr)
        return 2
    results: dict[str, list[float] | str] = {}
    profiles: dict[str, list[tuple[str, float]]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-tp-"))
    try:
        with Lab() as lab:
            star = iperf_star(lab, tmp)
            try:
                results[VETH] = iperf(lab, star.ns_a, HOST_B, args.time, args.runs)
            except Missing as e:
                results[VETH] = str(e)
            try:
                results[OURS], profiles = measure_ours(star, tmp, args)
            except Missing as e:
                results[OURS] = str(e)
            if args.no_softether:
                results[SOFTETHER] = results[REAL_CLIENT] = "skipped (--no-softether)"
            else:
                try:
                    results.update(measure_softether(star, tmp, args, profiles))
                except Missing as e:
                    results[SOFTETHER] = results[REAL_CLIENT] = str(e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(results, profiles, args)
    return 0


def report(results: dict[str, list[float] | str], profiles: dict, args) -> None:
    from tabulate import tabulate

    ours = results.get(OURS)
    rows = []
    for name, rates in sorted(results.items()):
        median, detail = fmt(rates)
        ratio = ""
        if isinstance(rates, list) and isinstance(ours, list) and not name.startswith("(a)"):
            ratio = f"{statistics.median(ours) / statistics.median(rates):.2f}"
        rows.append([name, median, ratio, detail])
    print(f"TCP throughput, iperf3 -t {args.time}, median of {args.runs} (Mbit/s)")
    print(tabulate(rows, headers=["path", "Mbit/s", "ours / this", "runs (or why missing)"]))
    for line in NOTES:
        print(line)
    for name, top in profiles.items():
        print(f"\npy-spy, {name}: top functions by own time")
        print(tabulate([[f, f"{pct:.1f}%"] for f, pct in top], headers=["function", "samples"]))


if __name__ == "__main__":
    sys.exit(main())
