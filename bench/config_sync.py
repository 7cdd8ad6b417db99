"""Configuration sync of a cluster with a large configuration: real vpnd
processes on loopback (a controller and --members members), product code
only.

The controller is given --hubs dynamic hubs x --users users each (through
its own config store while stopped: one change, tools/vpndrill/lab/
bulk_config.py), then the members join one by one. Figures, medians:

- new member in sync: from its SetFarmSetting (member mode) until the
  controller lists it "in sync" at the controller's config serial
  (EnumFarmMember ConfigSync_str / ConfigSerial_u64), i.e. it acknowledged
  the last chunk of a full sync. The joins of the members, then --rejoins
  more (a member made standalone, which drops its hubs, and a member again).
- CreateUser to every member: from the CreateUser call until every member
  is listed in sync at the new serial (--changes runs). The CreateUser call
  alone (the controller saving its whole configuration) is shown too.
- bytes on the bus: the encoded configuration messages the controller sent
  (EnumFarmMember ConfigBytesSent_u64: deltas and full-sync chunks, counted
  by the bus as it sends them), for one full sync and per CreateUser (all
  members together). The frames' payload as the bus encodes it, before
  CURVE (16 bytes of MAC and nonce per frame more on the wire). Counting
  the TCP bytes of the bus sockets would not do: a member evicted and
  rejoining (a node busy longer than the liveness timeout, as each change
  made them before the config store wrote hub by hub) takes its closed
  socket's counters with it; the counter survives that.

    python3 bench/config_sync.py [--hubs 1000] [--users 100] [--members 3] [--changes 5] [--rejoins 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tabulate import tabulate  # noqa: E402

from node.state import model  # noqa: E402
from tools.vpnctl.client import AdminClient  # noqa: E402
from tools.vpndrill.cluster import Node, discover_bus, wait_until  # noqa: E402
from tools.vpndrill.lab.bulk_config import add_hubs  # noqa: E402

SYNC_TIMEOUT_S = 600.0
POLL_S = 0.02


@dataclass(frozen=True)
class Sample:
    seconds: float
    config_bytes: int


class Bench:
    def __init__(self, base: Path, args: argparse.Namespace) -> None:
        self.args = args
        password = "bench-pw"
        self.ctl = Node("controller", base / "controller", password)
        self.members = [Node(f"member{i + 1}", base / f"member{i + 1}", password) for i in range(args.members)]
        self._client: AdminClient | None = None

    @property
    def client(self) -> AdminClient:
        assert self._client is not None
        return self._client

    def start_controller(self) -> None:
        self.ctl.start()
        with self.ctl.client() as c:
            c.call("SetFarmSetting", {"ServerType_u32": 1, "Weight_u32": 100, "ControllerOnly_bool": True})
        wait_until(lambda: discover_bus(self.ctl.port), "controller bus up", 30)
        self.ctl.stop()
        began = time.monotonic()
        add_hubs(self.ctl.state_dir, self.args.hubs, self.args.users, hub_type=model.HUB_DYNAMIC)
        print(f"controller configuration: {self.args.hubs} hubs x {self.args.users} users "
              f"({(self.ctl.state_dir / 'vpnd.config.json').stat().st_size / 1e6:.1f} MB on disk, "
              f"written in {time.monotonic() - began:.1f} s)", flush=True)
        self.ctl.start(timeout_s=120)
        self._client = self.ctl.client()

    def rows(self) -> list[dict]:
        return [r for r in self.client.call("EnumFarmMember")["FarmMemberList"] if not r["Controller_bool"]]

    def all_in_sync(self, count: int, above: int = -1) -> bool:
        rows = self.rows()
        return len(rows) == count and all(
            r["ConfigSync_str"] == "in sync" and r["ConfigSerial_u64"] == r["ControllerConfigSerial_u64"] > above
            for r in rows)

    def controller_serial(self) -> int:
        return int(self.client.call("EnumFarmMember")["FarmMemberList"][0]["ControllerConfigSerial_u64"])

    def set_member(self, m: Node, member: bool) -> None:
        params = {"ServerType_u32": 0} if not member else {
            "ServerType_u32": 2, "ControllerName_str": "127.0.0.1", "ControllerPort_u32": self.ctl.port,
            "MemberPasswordPlaintext_str": self.ctl.password, "PublicIp_ip": "127.0.0.1", "Ports_u32": [m.port],
            "Weight_u32": 100}
        with m.client() as c:
            c.call("SetFarmSetting", params)

    def config_bytes(self) -> int:
        return int(self.client.call("EnumFarmMember")["ConfigBytesSent_u64"])

    def timed(self, action: Callable[[], None], done: Callable[[], bool], what: str) -> Sample:
        """Seconds from `action` until `done`, and the configuration bytes sent meanwhile."""
        before, began = self.config_bytes(), time.monotonic()
        action()
        wait_until(done, what, SYNC_TIMEOUT_S, step_s=POLL_S)
        return Sample(time.monotonic() - began, self.config_bytes() - before)

    def run(self) -> None:
        self.start_controller()
        joins: list[Sample] = []
        for k, m in enumerate(self.members, 1):
            m.start()
            joins.append(self.timed(lambda: self.set_member(m, True), lambda: self.all_in_sync(k),
                                    f"member {k} in sync"))
            print(f"member {k} in sync after {joins[-1].seconds:.2f} s", flush=True)
        n = len(self.members)
        for i in range(self.args.rejoins):
            m = self.members[i % n]
            self.set_member(m, False)
            wait_until(lambda: len(self.rows()) == n - 1, "member gone", 60)
            joins.append(self.timed(lambda: self.set_member(m, True), lambda: self.all_in_sync(n),
                                    "member in sync again"))
            print(f"rejoin {i + 1}: in sync after {joins[-1].seconds:.2f} s", flush=True)

        changes: list[Sample] = []
        calls: list[float] = []
        for i in range(self.args.changes):
            serial = self.controller_serial()
            hub = f"BULK{(i * 7919) % self.args.hubs}"

            def create() -> None:
                began = time.monotonic()
                self.client.call("CreateUser", {"HubName_str": hub, "Name_str": f"bench{i}", "AuthType_u32": 1,
                                                "Auth_Password_str": f"pw-bench{i}"})
                calls.append(time.monotonic() - began)
            changes.append(self.timed(create, lambda: self.all_in_sync(n, above=serial), "change in sync"))
            print(f"CreateUser {i + 1}: every member in sync after {changes[-1].seconds:.2f} s "
                  f"({changes[-1].config_bytes} bytes of configuration sent)", flush=True)

        def med(values: Iterable[float]) -> float:
            return statistics.median(list(values))
        full = med(s.config_bytes for s in joins)
        per_change = med(s.config_bytes for s in changes)
        rows = [
            ("new member in sync (s)", f"{med(s.seconds for s in joins):.2f}", len(joins)),
            ("CreateUser to every member (s)", f"{med(s.seconds for s in changes):.2f}", len(changes)),
            ("  of which the CreateUser call (s)", f"{med(calls):.2f}", len(calls)),
            ("configuration bytes, full sync of one member", f"{full:,.0f}", len(joins)),
            (f"configuration bytes per CreateUser ({n} members)", f"{per_change:,.0f}", len(changes)),
            ("  per member", f"{per_change / n:,.0f}", len(changes)),
            ("full sync / one change, per member", f"{full / max(per_change / n, 1):,.0f}x", ""),
            ("members evicted during the run (a node busy > 3 s)",
             str(self.ctl.log_path.read_text(errors="replace").count(": out of load balancing")), ""),
        ]
        print()
        print(f"{self.args.hubs} hubs x {self.args.users} users, {n} members (medians)")
        print(tabulate(rows, headers=["figure", "median", "runs"], tablefmt="simple"))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        for node in [*self.members, self.ctl]:
            node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hubs", type=int, default=1000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--rejoins", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the state dirs and logs (printed)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    base = Path(tempfile.mkdtemp(prefix="bench-config-sync-"))
    bench = Bench(base, args)
    try:
        bench.run()
    finally:
        bench.close()
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
