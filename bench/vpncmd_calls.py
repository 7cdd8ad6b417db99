"""Debian's real vpncmd against our vpnd and against SoftEther VPN Server 5.01,
measured the same way in the same run (the binary admin RPC).

  one command   `vpncmd /CMD ServerInfoGet`: a new TLS connection, the admin
                login and what vpncmd asks on connecting (GetServerInfo,
                GetCaps, GetServerCert), then the command
  script        `vpncmd /IN:script` with N x HubList (20 hubs) over one
                connection: the time per command

Medians of RUNS runs, with our ratio to SoftEther (below 1: ours is faster).

    python3 bench/vpncmd_calls.py [--runs 5] [--commands 50]

SoftEther and vpncmd need root and Debian's packages; without SoftEther only
our figures are printed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tabulate import tabulate  # noqa: E402

from tools.vpnctl.client import AdminClient  # noqa: E402
from tools.vpndrill.cluster import Node  # noqa: E402
from tools.vpndrill.lab.softether import VPNCMD, SoftEtherLab, skip_reason  # noqa: E402

PASSWORD = "bench-vpncmd-pw"


def _vpncmd(port: int, workdir: Path, *args: str) -> float:
    start = time.perf_counter()
    res = subprocess.run([str(VPNCMD), f"127.0.0.1:{port}", "/SERVER", f"/PASSWORD:{PASSWORD}", "/CSV", *args],
                         capture_output=True, text=True, timeout=120, cwd=workdir, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        raise RuntimeError(f"vpncmd {' '.join(args)} failed ({res.returncode}): {res.stdout[-300:]}")
    return elapsed


def measure(client: AdminClient, port: int, workdir: Path, runs: int, commands: int) -> dict[str, float]:
    for i in range(20):
        client.call("CreateHub", {"HubName_str": f"B{i}", "Online_bool": True})
    script = workdir / "script.txt"
    script.write_text("HubList\n" * commands)
    one = statistics.median(_vpncmd(port, workdir, "/CMD", "ServerInfoGet") for _ in range(runs))
    empty = workdir / "empty.txt"
    empty.write_text("")
    base = statistics.median(_vpncmd(port, workdir, f"/IN:{empty}") for _ in range(runs))
    full = statistics.median(_vpncmd(port, workdir, f"/IN:{script}") for _ in range(runs))
    return {"one command (s)": one, "per scripted HubList (ms)": (full - base) / commands * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--commands", type=int, default=50)
    args = parser.parse_args()
    reason = skip_reason()
    if not VPNCMD.exists():
        print(f"vpncmd not installed ({VPNCMD})")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-vpncmd-") as tmp:
        node = Node("vpnd", Path(tmp) / "vpnd", PASSWORD)
        node.start()
        try:
            with AdminClient("127.0.0.1", node.port, PASSWORD) as client:
                ours = measure(client, node.port, Path(tmp), args.runs, args.commands)
        finally:
            node.stop()
        theirs: dict[str, float] = {}
        if reason is None:
            with SoftEtherLab(Path(tmp) / "se") as lab:
                server = lab.server("bench-vpncmd", password=PASSWORD)
                with server.client() as client:
                    theirs = measure(client, server.port, Path(tmp), args.runs, args.commands)
    rows = []
    for name, value in ours.items():
        se = theirs.get(name)
        rows.append([name, f"{value:.3f}", f"{se:.3f}" if se else "-", f"{value / se:.2f}" if se else "-"])
    print(tabulate(rows, headers=[f"vpncmd (median of {args.runs})", "vpnd", "SoftEther 5.01", "ratio"],
                   tablefmt="github"))
    if reason:
        print(f"SoftEther not measured: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
