"""Two clusters behind one interface, for benchmarks that compare them:
ours (vpndrill's `LocalCluster`: vpnd processes) and Debian's real SoftEther
VPN Server 5.01 (controller + members through `SoftEtherLab`).

Both run on 127.0.0.1 of the caller's network namespace (the benchmarks run
in a private one, see `run_in_private_netns`), the controller with
"controller functions only" (as a SoftEther operator sets it so that every
VPN session goes to a member), a static hub `hub` with `users` on every
server. `servers()` names each server ("controller", "member1", ...) with its
"host:port"; `sessions()` counts the sessions each server holds itself
(EnumSession on that server, rows with RemoteSession_bool false), so a
benchmark shows where sessions landed whether or not the controller
redirects. Faults for failover: `kill`, `freeze`/`thaw` (SIGSTOP/SIGCONT)
and `restart`, by server name, by PID only; and, on ours only (`can_drain`),
`drain`/`undrain` (ClusterMemberDrain: the member's sessions move away).
"""

from __future__ import annotations

import abc
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tools.vpnclient.client import UserspaceClient
from tools.vpnclient.retry import RetryPolicy
from tools.vpnctl.client import AdminClient, AdminError
from tools.vpndrill.cluster import LocalCluster, Node, wait_until
from tools.vpndrill.lab.softether import (
    SERVER_TYPE_CONTROLLER, SERVER_TYPE_MEMBER, LabError, SoftEtherClient, SoftEtherLab, SoftEtherServer,
    children_of,
)

JOIN_TIMEOUT_S = 60.0


class BenchCluster(abc.ABC):
    """A running cluster with a static hub; close() stops every server."""

    label: str
    hub: str
    can_drain = False
    """Whether the cluster has a graceful drain (SoftEther has none)."""

    @abc.abstractmethod
    def servers(self) -> dict[str, str]:
        """Server name -> "host:port" (controller first)."""

    @abc.abstractmethod
    def admin(self, name: str) -> AdminClient:
        """A server-admin JSON-RPC client for server `name` (caller closes)."""

    @property
    def controller(self) -> str:
        return self.servers()["controller"]

    def name_of(self, address: str | None) -> str:
        """The server name listening at `address` ("?" if none)."""
        return next((n for n, a in self.servers().items() if a == address), "?")

    def sessions(self, users: set[str] | None = None) -> dict[str, int]:
        """Sessions each server holds itself on the hub (of `users` if given)."""
        counts = {}
        for name in self.servers():
            try:
                with self.admin(name) as c:
                    rows = c.call("EnumSession", {"HubName_str": self.hub})["SessionList"]
            except AdminError:
                counts[name] = -1  # no answer (down, frozen, or the call is refused)
                continue
            counts[name] = sum(1 for r in rows if not r.get("RemoteSession_bool")
                               and (users is None or r.get("Username_str") in users))
        return counts

    @abc.abstractmethod
    def kill(self, name: str) -> None:
        """SIGKILL server `name` (SoftEther: its watchdog first, so it stays dead)."""

    @abc.abstractmethod
    def freeze(self, name: str) -> None:
        """SIGSTOP server `name`."""

    @abc.abstractmethod
    def thaw(self, name: str) -> None:
        """SIGCONT server `name`."""

    @abc.abstractmethod
    def restart(self, name: str) -> None:
        """Start a killed server `name` again with its saved state; returns once it rejoined."""

    def drain(self, name: str, rate: int) -> None:
        """Drain member `name`: no new session, its sessions move away at `rate` per second."""
        raise LabError(f"{self.label} has no graceful drain")

    def undrain(self, name: str) -> None:
        raise LabError(f"{self.label} has no graceful drain")

    @abc.abstractmethod
    def close(self) -> None:
        """Stop every server by PID."""

    def __enter__(self) -> BenchCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OurCluster(BenchCluster):
    label = "ours"
    can_drain = True

    def __init__(self, base: Path, weights: list[int], hub: str, users: dict[str, str]) -> None:
        self.hub = hub
        self.local = LocalCluster(base, len(weights), weights=weights, controller_only=True)
        try:
            self.local.start()
            with self.local.controller.client() as c:
                c.call("CreateHub", {"HubName_str": hub, "Online_bool": True, "HubType_u32": 1})
                for user, password in users.items():
                    c.call("CreateUser", {"HubName_str": hub, "Name_str": user, "AuthType_u32": 1,
                                          "Auth_Password_str": password})
            for m in self.local.members:
                wait_until(lambda m=m: _has_hub(m.client(), hub), f"{m.name}: hub {hub} present", JOIN_TIMEOUT_S)
        except BaseException:
            self.local.close()
            raise

    def nodes(self) -> dict[str, Node]:
        return {n.name: n for n in self.local.nodes}

    def servers(self) -> dict[str, str]:
        return {name: f"127.0.0.1:{n.port}" for name, n in self.nodes().items()}

    def admin(self, name: str) -> AdminClient:
        return self.nodes()[name].client()

    def kill(self, name: str) -> None:
        self.nodes()[name].kill()

    def freeze(self, name: str) -> None:
        self.nodes()[name].signal(signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        self.nodes()[name].signal(signal.SIGCONT)

    def restart(self, name: str) -> None:
        node = self.nodes()[name]
        node.start()

        def listed() -> bool:
            try:
                return node.port in self.local.listed_ports()
            except AdminError:  # the controller busy or between answers: ask again
                return False
        wait_until(listed, f"{name} rejoined", JOIN_TIMEOUT_S)

    def drain(self, name: str, rate: int) -> None:
        self.local.drain(self.nodes()[name], rate)

    def undrain(self, name: str) -> None:
        self.local.undrain(self.nodes()[name])

    def close(self) -> None:
        self.local.close()


class RealCluster(BenchCluster):
    label = "SoftEther 5.01"

    def __init__(self, selab: SoftEtherLab, weights: list[int], hub: str, users: dict[str, str],
                 password: str = "bench-ctl-pw") -> None:
        self.hub, self.selab = hub, selab
        tag = os.getpid()
        ctl = selab.server(f"ctl-{tag}", password=password)
        ctl.rpc("SetFarmSetting", {"ServerType_u32": SERVER_TYPE_CONTROLLER, "Weight_u32": 100,
                                   "ControllerOnly_bool": True})
        ctl.wait_admin(server_type=SERVER_TYPE_CONTROLLER)
        self._servers: dict[str, SoftEtherServer] = {"controller": ctl}
        settings: dict[str, dict[str, object]] = {}
        for i, weight in enumerate(weights):
            m = selab.server(f"m{i + 1}-{tag}")
            settings[m.name] = {
                "ServerType_u32": SERVER_TYPE_MEMBER, "ControllerName_str": "127.0.0.1",
                "ControllerPort_u32": ctl.port, "MemberPasswordPlaintext_str": password,
                "PublicIp_ip": "127.0.0.1", "Ports_u32": [m.port], "Weight_u32": weight}
            m.rpc("SetFarmSetting", settings[m.name])
            self._servers[f"member{i + 1}"] = m
        for name, m in self._servers.items():
            if name != "controller":
                try:
                    m.wait_admin(JOIN_TIMEOUT_S / 2, server_type=SERVER_TYPE_MEMBER)
                except LabError:
                    # Seen once under load (CI): SetFarmSetting answered, yet the
                    # server stayed standalone for 60 s. Asking again is what an
                    # operator would do; a second failure is the test's error.
                    m.rpc("SetFarmSetting", settings[m.name])
                    m.wait_admin(JOIN_TIMEOUT_S, server_type=SERVER_TYPE_MEMBER)
                self._wait_online(m)
        ctl.rpc("CreateHub", {"HubName_str": hub, "Online_bool": True, "HubType_u32": 1})
        for user, password in users.items():
            ctl.rpc("CreateUser", {"HubName_str": hub, "Name_str": user, "AuthType_u32": 1,
                                   "Auth_Password_str": password})
        for name, m in self._servers.items():
            wait_until(lambda m=m: _has_hub(m.client(), hub), f"{name}: hub {hub} present", JOIN_TIMEOUT_S)

    @staticmethod
    def _wait_online(m: SoftEtherServer) -> None:
        def online() -> bool:
            try:
                return bool(m.rpc("GetFarmConnectionStatus", timeout_s=3.0).get("Online_bool"))
            except AdminError:
                return False
        wait_until(online, f"{m.name}: connected to the controller", JOIN_TIMEOUT_S, 0.2)

    def servers(self) -> dict[str, str]:
        return {name: s.address for name, s in self._servers.items()}

    def admin(self, name: str) -> AdminClient:
        return self._servers[name].client(timeout_s=5.0)

    def _pids(self, name: str) -> list[int]:
        s = self._servers[name]
        if s.parent_pid is None:
            return []
        return [s.parent_pid, *children_of(s.parent_pid)]

    def kill(self, name: str) -> None:
        self._servers[name].stop()  # the watchdog first, then the server: no respawn

    def freeze(self, name: str) -> None:
        for pid in self._pids(name):
            os.kill(pid, signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        for pid in self._pids(name):
            os.kill(pid, signal.SIGCONT)

    def restart(self, name: str) -> None:
        s = self._servers[name]
        s.start()
        self._wait_online(s)

    def close(self) -> None:
        self.selab.stop_all()


def _has_hub(client: AdminClient, hub: str) -> bool:
    try:
        with client as c:
            return any(h["HubName_str"] == hub for h in c.call("EnumHub")["HubList"])
    except AdminError:
        return False


HOST_MAC = bytes.fromhex("027670000002")


async def connect_hosts(cluster: BenchCluster, user: str, password: str, ip: str,
                        retry: RetryPolicy) -> dict[str, UserspaceClient]:
    """A userspace host answering ARP and ping for `ip` on every server that
    takes sessions (server name -> its client): a session's ping then never
    depends on forwarding between members. Connects at most 3 x servers
    clients through the controller and keeps the first on each server.
    All have the same MAC (HOST_MAC): after a failover to another member the
    client's ARP entry for `ip` still holds, as for one host."""
    hosts: dict[str, UserspaceClient] = {}
    spare: list[UserspaceClient] = []
    try:
        for _ in range(3 * len(cluster.servers())):
            h = UserspaceClient(cluster.controller, cluster.hub, user, password, retry=retry, ip=ip, mac=HOST_MAC)
            await h.wait_connected(30)
            name = cluster.name_of(h.status.server)
            if name in hosts:
                spare.append(h)
            else:
                hosts[name] = h
            if set(hosts) >= set(cluster.servers()) - {"controller"}:
                break
    finally:
        await asyncio.gather(*(h.stop() for h in spare), return_exceptions=True)
    return hosts


def real_client_account(cli: SoftEtherClient, cluster: BenchCluster, user: str, password: str,
                        tap_cidr: str) -> None:
    """Account "a1" of SoftEther's vpnclient `cli` to the cluster's
    controller, its TAP device vpn_vpn1 (in the caller's namespace) up with
    `tap_cidr`; retries every 5 s (the smallest interval it accepts)."""
    cli.must("NicCreate", "vpn1")
    cli.must("AccountCreate", "a1", f"/SERVER:{cluster.controller}", f"/HUB:{cluster.hub}", f"/USERNAME:{user}",
             "/NICNAME:vpn1")
    cli.must("AccountPasswordSet", "a1", f"/PASSWORD:{password}", "/TYPE:standard")
    cli.must("AccountRetrySet", "a1", "/NUM:999", "/INTERVAL:5")
    subprocess.run(["ip", "addr", "add", tap_cidr, "dev", "vpn_vpn1"], check=True, timeout=10)
    subprocess.run(["ip", "link", "set", "vpn_vpn1", "up"], check=True, timeout=10)


IFF_UP = 0x1


def wait_link_up(ifname: str, timeout_s: float) -> bool:
    """Wait until interface `ifname` (in the caller's namespace) is up; False after `timeout_s`.

    SoftEther's vpnclient sets its TAP device down when an account
    disconnects and up again once the next session is established. While it
    is down the kernel has no route to the TAP's subnet, so a `ping` started
    then exits at once ("connect: Network is unreachable"): start pings on
    the real client's TAP only after this returns True. The address stays
    on the device; the kernel adds the subnet route again when it goes up."""
    flags = Path(f"/sys/class/net/{ifname}/flags")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if int(flags.read_text(), 16) & IFF_UP:
                return True
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


# ---- a private network namespace for a whole benchmark -------------------------------------

INSIDE_ENV = "VPNBENCH_NETNS"


def run_in_private_netns(script: str, argv: list[str], timeout_s: float) -> int:
    """Run `python3 script argv...` inside a new network namespace (loopback
    only) and return its exit status; the namespace is removed afterwards,
    also on failure or Ctrl-C. The child finds the namespace's name in
    $VPNBENCH_NETNS. Everything the benchmark starts then talks over that
    namespace's own 127.0.0.1: no port clash with other runs, no traffic
    outside, and SoftEther's client can use its fixed management port.

    The child shares our session, so a Ctrl-C reaches it too; it stops its
    own servers (by PID) in its `finally` blocks. We wait for that, bounded."""
    from tools.vpndrill.lab.netns import Lab

    with Lab() as lab:
        ns = lab.netns("bench")
        env = dict(os.environ, **{INSIDE_ENV: ns})
        proc = subprocess.Popen(lab.argv(ns, [sys.executable, script, *argv]), env=env)
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            print(f"benchmark did not finish within {timeout_s:.0f} s: stopping it", file=sys.stderr)
            proc.send_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass
        try:
            return proc.wait(60)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.kill()
            return proc.wait(10)


def inside_netns() -> str | None:
    """The private namespace's name when running inside run_in_private_netns."""
    return os.environ.get(INSIDE_ENV)


def bench_main(script: str, name: str, inner: Callable[[], int], timeout_s: float,
               missing: str | None = None) -> int:
    """A root benchmark's entry point: run `inner` when already inside its
    private namespace, else run `script` again in a new one (needs root;
    `missing` is another reason it cannot run, e.g. a tool not installed)."""
    if inside_netns():
        return inner()
    from tools.vpndrill.lab.netns import root_skip_reason

    reason = root_skip_reason() or missing
    if reason:
        print(f"{name}: cannot run: {reason}", file=sys.stderr)
        return 2
    return run_in_private_netns(script, sys.argv[1:], timeout_s)


def describe(counts: dict[str, int]) -> str:
    return " ".join(f"{n}={c if c >= 0 else 'n/a'}" for n, c in counts.items())


def wait_sessions(cluster: BenchCluster, want: int, users: set[str], timeout_s: float = 10.0) -> dict[str, int]:
    """Session counts once they add up to `want` (or the last counts after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = cluster.sessions(users)
        if sum(max(c, 0) for c in counts.values()) >= want or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


__all__ = ["BenchCluster", "LabError", "OurCluster", "RealCluster", "connect_hosts", "describe", "real_client_account", "inside_netns",
           "run_in_private_netns", "bench_main", "wait_link_up", "wait_sessions"]
