"""A member crash seen from outside: `vpndrill observe` on our cluster and on
Debian's real SoftEther VPN Server 5.01, side by side, in one run.

Each cluster (tools/vpndrill/lab/clusters.py: a controller with "controller
functions only" and two members, weights 100 and 200, a static hub) gets
SESSIONS userspace sessions (tools/vpnclient) through its controller; then
`vpndrill observe --server CONTROLLER --for WATCH_S --json` is started, the
busiest member is killed (-9; SoftEther: its watchdog first) a few seconds
in, and the observer's report is read: when the member left the list after
the first session went (detection), how many sessions it held, each
session's gap as the admin API shows it (from its last listing to its new
session's first), sessions lost. Both run in a private network namespace
(root) on its loopback. The reports and PNGs are written to --out.

    sudo python3 bench/observe_crash.py [--runs 3] [--out DIR] [--no-softether]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tabulate import tabulate  # noqa: E402

from tools.vpnclient.client import UserspaceClient  # noqa: E402
from tools.vpnclient.retry import RetryPolicy, State  # noqa: E402
from tools.vpndrill.lab.clusters import BenchCluster, OurCluster, RealCluster, bench_main  # noqa: E402
from tools.vpndrill.lab.softether import SoftEtherLab, skip_reason  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
HUB, USER, PASSWORD = "OFFICE", "alice", "alice-secret"
SESSIONS = 12
WATCH_S = 20.0
KILL_AFTER_S = 4.0
SE_PASSWORD = "bench-ctl-pw"  # RealCluster's default controller password


async def one_run(cluster: BenchCluster, password: str, out: Path, tag: str) -> dict:
    """Sessions up, observer on, kill the busiest member; the observer's JSON report."""
    retry = RetryPolicy(max_retries=200, base_s=0.1, cap_s=1.0)
    clients = [UserspaceClient(cluster.controller, HUB, USER, PASSWORD, retry=retry,
                               local_address=f"127.0.0.{10 + i}") for i in range(SESSIONS)]
    pw = out / f"{tag}.pw"
    pw.write_text(password + "\n")
    # the last run's sessions gone everywhere first (SoftEther lists a stopped client's a while)
    deadline = time.monotonic() + 60.0
    while sum(max(c, 0) for c in cluster.sessions({USER}).values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        for c in clients:
            await c.wait_connected(60)
        where = [cluster.name_of(c.status.server) for c in clients]
        victim = max(set(where) - {"controller"}, key=where.count)
        observer = subprocess.Popen(
            [sys.executable, "-m", "tools.vpndrill.main", "observe", "--server", cluster.controller,
             "--password-file", str(pw), "--for", str(WATCH_S), "--json", "--plot", str(out / f"{tag}.png")],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            await asyncio.sleep(KILL_AFTER_S)
            cluster.kill(victim)
            stdout, stderr = await asyncio.to_thread(observer.communicate, timeout=WATCH_S + 60)
        finally:
            if observer.poll() is None:
                observer.kill()
                observer.wait(10)
        if observer.returncode != 0:
            raise RuntimeError(f"observe failed ({observer.returncode}): {stderr[-500:]}")
        (out / f"{tag}.json").write_text(stdout)
        doc = json.loads(stdout)
        doc["clients_connected"] = sum(c.status.state is State.CONNECTED for c in clients)
        cluster.restart(victim)
        return doc
    finally:
        pw.unlink(missing_ok=True)
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)


def summary(docs: list[dict]) -> list[str]:
    lefts = [next((e for e in d["events"] if e["action"] == "left"), None) for d in docs]
    seen = [e for e in lefts if e is not None]
    gaps = [g for e in seen for g in e["gaps_s"]]

    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}" if values else "-"
    return [f"{len(seen)}/{len(docs)}", med([e["detection_s"] for e in seen]),
            med([float(e["affected"]) for e in seen]), med(gaps), f"{max(gaps):.2f}" if gaps else "-",
            str(sum(d["sessions_lost"] for d in docs)), str(sum(d["clients_connected"] for d in docs))]


def inner(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="observe-crash-") as tmp_name:
        tmp = Path(tmp_name)
        with OurCluster(tmp / "ours", [100, 200], HUB, {USER: PASSWORD}) as ours:
            docs = [asyncio.run(one_run(ours, ours.local.controller.password, out, f"ours-{i + 1}"))
                    for i in range(args.runs)]
        rows.append(["ours", *summary(docs)])
        reason = skip_reason()
        if args.no_softether or reason:
            print(f"SoftEther skipped: {reason or '--no-softether'}")
        else:
            with SoftEtherLab(tmp / "se") as selab:
                real = RealCluster(selab, [100, 200], HUB, {USER: PASSWORD})
                try:
                    docs = [asyncio.run(one_run(real, SE_PASSWORD, out, f"softether-{i + 1}"))
                            for i in range(args.runs)]
                finally:
                    real.close()
            rows.append(["SoftEther 5.01", *summary(docs)])
    print(f"\nA member killed under {SESSIONS} sessions, seen by `vpndrill observe` (median of {args.runs} runs; "
          f"reports and PNGs in {out})")
    print(tabulate(rows, headers=["cluster", "left the list", "detection s", "sessions on it", "gap median s",
                                  "gap max s", "sessions lost", "clients connected at end"]))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="kills per cluster (default 3)")
    p.add_argument("--out", default="observe-crash", help="where the reports and PNGs go (default ./observe-crash)")
    p.add_argument("--no-softether", action="store_true", help="our cluster only")
    args = p.parse_args()
    if not 1 <= args.runs <= 20:
        p.error("--runs must be 1..20")
    return bench_main(__file__, "observe_crash", lambda: inner(args), timeout_s=1800)


if __name__ == "__main__":
    sys.exit(main())
