"""Admin API calls per second: our vpnd against Debian's real SoftEther VPN
Server 5.01, measured the same way in the same run.

One keep-alive JSON-RPC client on loopback makes N calls of each kind:
  read   GetServerInfo
  list   EnumHub with 20 hubs
  write  CreateUser + DeleteUser pairs (each acknowledged change of ours is
         fsynced to disk before the answer; SoftEther writes its config lazily)
and reports the median of RUNS runs, with our ratio to SoftEther.

    python3 bench/admin_calls.py [--calls 200] [--runs 5]

SoftEther needs root (it runs in its own mount namespace); without it only
our figures are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tabulate import tabulate  # noqa: E402

from tools.vpnctl.client import AdminClient  # noqa: E402
from tools.vpndrill.cluster import Node  # noqa: E402
from tools.vpndrill.lab.softether import SoftEtherLab, skip_reason  # noqa: E402


def _rate(fn, calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return calls / (time.perf_counter() - start)


def measure(client: AdminClient, calls: int, runs: int) -> dict[str, float]:
    for i in range(20):
        client.call("CreateHub", {"HubName_str": f"B{i}", "Online_bool": True, "HubType_u32": 0})
    hub = "B0"
    kinds = {
        "read (GetServerInfo)": lambda i: client.call("GetServerInfo"),
        "list (EnumHub, 20 hubs)": lambda i: client.call("EnumHub"),
        "write (CreateUser+DeleteUser)": lambda i: (
            client.call("CreateUser", {"HubName_str": hub, "Name_str": f"u{i}", "AuthType_u32": 1,
                                       "Auth_Password_str": "pw"}),
            client.call("DeleteUser", {"HubName_str": hub, "Name_str": f"u{i}"})),
    }
    out = {}
    for name, fn in kinds.items():
        factor = 2 if name.startswith("write") else 1
        out[name] = statistics.median(_rate(fn, calls // factor) * factor for _ in range(runs))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-admin-") as tmp:
        node = Node("vpnd", Path(tmp) / "vpnd", "bench-admin-pw")
        node.start()
        try:
            with AdminClient("127.0.0.1", node.port, node.password) as client:
                ours = measure(client, args.calls, args.runs)
        finally:
            node.stop()
        theirs: dict[str, float] = {}
        reason = skip_reason()
        if reason is None:
            with SoftEtherLab(Path(tmp) / "se") as lab:
                server = lab.server("bench")
                with server.client() as client:
                    theirs = measure(client, args.calls, args.runs)
        rows = []
        for name, rate in ours.items():
            se = theirs.get(name)
            rows.append([name, f"{rate:.0f}", f"{se:.0f}" if se else "-", f"{rate / se:.2f}" if se else "-"])
        print(tabulate(rows, headers=["calls/s (median of %d x %d)" % (args.runs, args.calls),
                                      "vpnd", "SoftEther 5.01", "ratio"], tablefmt="github"))
        if reason:
            print(f"SoftEther not measured: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
