"""Running a scenario on a throw-away loopback cluster: the I/O edge.

`Drill` builds what the scenario names (vpndrill's `LocalCluster`: vpnd
processes on 127.0.0.1 in a temp dir; hubs and users made with the admin
calls vpnctl makes), connects the clients (tools/vpnclient
`UserspaceClient`s in this process, one after the other, each through the
controller), then runs three bounded tasks side by side until the timeline
is done or `duration_s` has passed:

  sample    every SAMPLE_S: where each client's session is (its status:
            connected, and to which server) -> Timeline.sessions
  members   every MEMBER_POLL_S: the controller's member list -> Timeline.members
  steps     each step waits for its time or condition, then applies its
            action by PID (kill -9, SIGSTOP/SIGCONT, SIGTERM and start again)
            or by admin call (drain/undrain) -> Timeline.event

Clients with `ping = "peer"` ping each other in pairs every PING_S; every
ping is fed to the timeline. Decisions (gaps, detection, what was lost)
are the timeline's (tools/vpndrill/timeline.py); this module only applies
actions and samples.

Everything started is stopped: the clients by `stop()` (their sessions
closed) and every vpnd by its PID (LocalCluster.close), on success, failure,
Ctrl-C and SIGTERM (main.py turns both into an exception that unwinds
through here).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tools.vpnclient import frames as fr
from tools.vpnclient.client import UserspaceClient
from tools.vpnclient.retry import RetryPolicy, State
from tools.vpnctl.client import AdminClient, AdminError
from tools.vpndrill.cluster import JOIN_TIMEOUT_S, DrillError, LocalCluster, Node, wait_until
from tools.vpndrill.lab.netns import Lab
from tools.vpndrill.lab.nscluster import LAN_HOST, LAN_PREFIX, NsTopology, TapClient
from tools.vpndrill.scenario_file import ClientsSpec, Scenario, Step, chaos_steps, needs_netns
from tools.vpndrill.timeline import FAULTS, Timeline

log = logging.getLogger("vpndrill")
SAMPLE_S = 0.05
MEMBER_POLL_S = 0.1
PING_S = 0.1
CONNECT_TIMEOUT_S = 30.0
SETTLE_TIMEOUT_S = 60.0
STEP_GRACE_S = 0.5  # a step "after settled" waits this long in steady state first
CLIENT_RETRY = RetryPolicy(max_retries=1000, base_s=0.1, cap_s=1.0)


@dataclass
class DrillClient:
    name: str
    hub: str
    client: UserspaceClient
    peer: DrillClient | None = None

    def server(self) -> str | None:
        """"host:port" of the server holding its session now, None while down."""
        st = self.client.status
        return st.server if st.state is State.CONNECTED and st.server else None

    def session_name(self) -> str | None:
        return self.client.status.session_name


class Progress:
    """One status line rewritten in place on a terminal; plain lines (only
    when something changed) otherwise. Goes to stderr: stdout is the report's."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last = ""
        self._shown = ""

    def status(self, text: str, clock: str = "") -> None:
        """`clock` prefixes the line; off a terminal a line is printed only when `text` changed."""
        if self.tty:
            self.stream.write("\r\x1b[K" + clock + text)
            self.stream.flush()
        elif text != self._last:
            print(clock + text, file=self.stream, flush=True)
        self._last, self._shown = text, clock + text

    def line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
        print(text, file=self.stream, flush=True)
        if self.tty and self._shown:
            self.stream.write(self._shown)  # the status line again, under the new line
            self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


class Drill:
    """One scenario on one loopback cluster. Use as a context manager:
    leaving it stops every vpnd by PID."""

    def __init__(self, scenario: Scenario, base: Path, progress: Progress | None = None, *,
                 netns: bool = False) -> None:
        why = needs_netns(scenario)
        if why and not netns:
            raise DrillError(f"{why}: run it with --netns (root)")
        self.scenario = scenario
        self.base = base
        self.lab: Lab | None = None
        self.topology: NsTopology | None = None
        if netns:
            self.lab = Lab()
            try:
                self.topology = NsTopology(self.lab, 1 + len(scenario.members))
            except BaseException:
                self.lab.close()
                raise
        self.cluster = LocalCluster(base, len(scenario.members), scenario.liveness_s,
                                    weights=[m.weight for m in scenario.members],
                                    controller_only=scenario.controller_only,
                                    make_node=self.topology.make_node if self.topology else None)
        for node, spec in zip(self.cluster.members, scenario.members):
            node.name = spec.name
        self.timeline = Timeline()
        self.progress = progress or Progress()
        self.clients: list[DrillClient | TapClient] = []
        self.origin = time.monotonic()
        self._listed: set[str] = set()
        self._where: dict[str, str | None] = {}
        self._fault_targets: list[str] = []
        self._failures: list[str] = []
        self._probes: list[tuple[float, bool]] = []
        self._name_by_id: dict[int, str | None] = {}

    def __enter__(self) -> Drill:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.cluster.close()
        finally:
            if self.lab is not None:
                self.lab.close()

    @property
    def pids(self) -> list[int]:
        return self.cluster.pids

    @property
    def failures(self) -> list[str]:
        return list(self._failures)

    @property
    def last_where(self) -> dict[str, str | None]:
        """Client -> the server holding its session at the last sample (None: down)."""
        return dict(self._where)

    def now(self) -> float:
        return time.monotonic() - self.origin

    def node(self, name: str) -> Node:
        return next(n for n in self.cluster.nodes if n.name == name)

    def name_of(self, server: str | None) -> str | None:
        """The name of the node at "host:port" (None for None)."""
        if server is None:
            return None
        return next((n.name for n in self.cluster.nodes if f"{n.address}:{n.port}" == server), f"?{server}")

    # ---- set-up ---------------------------------------------------------------------------

    def build(self) -> None:
        """Start the cluster, make the hubs and users, wait for the static hubs on every member."""
        self.cluster.start()
        with self.cluster.controller.client() as c:
            for hub in self.scenario.hubs:
                c.call("CreateHub", {"HubName_str": hub.name, "Online_bool": True,
                                     "HubType_u32": 2 if hub.dynamic else 1})
                for user, password in hub.users.items():
                    c.call("CreateUser", {"HubName_str": hub.name, "Name_str": user, "AuthType_u32": 1,
                                          "Auth_Password_str": password})
        static = {h.name for h in self.scenario.hubs if not h.dynamic}
        for m in self.cluster.members:
            wait_until(lambda m=m: static <= _hubs_of(m), f"{m.name}: static hubs pushed", JOIN_TIMEOUT_S, 0.1)
        wait_until(self.members_eligible, "every member's endpoint verified", JOIN_TIMEOUT_S, 0.1)
        for hub in (h for h in self.scenario.hubs if h.lan):
            assert self.topology is not None  # refused in __init__ otherwise
            for i, node in enumerate(self.cluster.nodes):
                device = self.topology.add_lan(i)
                with node.client() as c:
                    c.call("AddLocalBridge", {"DeviceName_str": device, "HubNameLB_str": hub.name,
                                              "TapMode_bool": False})

    def members_eligible(self) -> bool:
        """Every member listed with its endpoint verified: the controller may send clients there."""
        try:
            rows = self.cluster.member_rows()
        except AdminError:
            return False
        return len(rows) == len(self.cluster.members) and not any(r.get("EndpointError_str") for r in rows)

    async def connect(self) -> None:
        """Connect every client through the controller, one after the other
        (so that the spread follows points and weights, not a race)."""
        ctl = f"{self.cluster.controller.address}:{self.cluster.controller.port}"
        n = 0
        for group in self.scenario.clients:
            if group.tap:
                n = await self._connect_tap(ctl, group, n)
                continue
            group_clients = []
            for i in range(group.count):
                n += 1
                ip = f"10.77.{n // 250}.{1 + n % 250}" if group.ping else None
                uc = UserspaceClient(ctl, group.hub, group.user, group.password, retry=CLIENT_RETRY, ip=ip,
                                     local_address=None if self.topology else f"127.0.{1 + n // 250}.{1 + n % 250}")
                dc = DrillClient(f"c{n:03d}", group.hub, uc)
                self.clients.append(dc)
                group_clients.append(dc)
                uc.start()
                await uc.wait_connected(CONNECT_TIMEOUT_S)
            if group.ping:
                for a, b in zip(group_clients[::2], group_clients[1::2]):
                    a.peer, b.peer = b, a

    async def _connect_tap(self, ctl: str, group: ClientsSpec, n: int) -> int:
        """TAP clients, each a vpnclient process in its own namespace; returns the last number used."""
        assert self.topology is not None and self.lab is not None  # refused in __init__ otherwise
        taps = []
        for _ in range(group.count):
            n += 1
            ns = await asyncio.to_thread(self.topology.add_client_ns, n)
            if group.ping == "lan":
                cidr, target = f"10.99.0.{n}/{LAN_PREFIX}", LAN_HOST
            else:
                cidr, target = f"10.98.{n // 250}.{1 + n % 250}/16", None
            tc = TapClient(f"c{n:03d}", group.hub, self.lab, ns, self.base, cidr, target)
            self.clients.append(tc)
            taps.append(tc)
            tc.start(ctl, group.user, group.password)
            if not await self._wait(lambda: tc.server() is not None, CONNECT_TIMEOUT_S):
                raise DrillError(f"{tc.name}: not connected within {CONNECT_TIMEOUT_S:g} s: {tc.status()}")
        if group.ping == "peer":
            for a, b in zip(taps[::2], taps[1::2]):
                a.target, b.target = b.tap_cidr.split("/")[0], a.tap_cidr.split("/")[0]
        return n

    async def stop_clients(self) -> None:
        users = [c.client.stop() for c in self.clients if isinstance(c, DrillClient)]
        taps = [asyncio.to_thread(c.stop) for c in self.clients if isinstance(c, TapClient)]
        await asyncio.gather(*users, *taps, return_exceptions=True)

    # ---- the run --------------------------------------------------------------------------

    async def run(self) -> None:
        """The timeline: sampling, pings and steps until done or duration_s."""
        self.origin = time.monotonic()
        wall_origin = time.time()
        for c in self.clients:
            if isinstance(c, TapClient):
                c.start_ping()
        steps = list(self.scenario.steps)
        done = asyncio.Event()
        tasks = [asyncio.ensure_future(self._sample(done)), asyncio.ensure_future(self._poll_members(done))]
        tasks += [asyncio.ensure_future(self._ping(c, done)) for c in self.clients
                  if isinstance(c, DrillClient) and c.peer is not None]
        try:
            await asyncio.wait_for(self._steps(steps), self.scenario.duration_s)
        except asyncio.TimeoutError:
            self._failures.append(f"timeline not done within duration_s = {self.scenario.duration_s:g} s")
        finally:
            done.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for n in self.cluster.nodes:  # never leave a member stopped
                n.signal(signal.SIGCONT)
            for c in self.clients:
                if isinstance(c, TapClient):
                    await asyncio.to_thread(c.stop)  # ping's last lines written
                    self._probes += [(t - wall_origin, ok) for t, ok in c.pings()]
            for t, answered in self._probes:
                self.timeline.probe(t, answered)
            self.timeline.end(self.now())
            self.progress.done()

    async def _steps(self, steps: list[Step]) -> None:
        for step in steps:
            await self._do(step)
        if self.scenario.chaos is not None:
            for step in chaos_steps(self.scenario.chaos, [m.name for m in self.scenario.members], self.now()):
                await self._do(step)
        if not await self._wait(lambda: self._settled(), SETTLE_TIMEOUT_S):
            self._failures.append(f"not settled {SETTLE_TIMEOUT_S:g} s after the last step")
        await asyncio.sleep(STEP_GRACE_S)

    async def _do(self, step: Step) -> None:
        where = f"line {step.line}" if step.line else "chaos"
        if step.at is not None:
            await asyncio.sleep(max(0.0, step.at - self.now()))
        else:
            cond = self._condition(step.after or "settled")
            if not await self._wait(cond, step.timeout_s):
                self._failures.append(f"step {step.action} {step.target} ({where}): {step.after} "
                                      f"not reached within {step.timeout_s:g} s")
                return
            if step.after == "settled":
                await asyncio.sleep(STEP_GRACE_S)
        await asyncio.sleep(step.delay)
        target = {"busiest": self._busiest, "last": self._last_target}.get(step.target, lambda: step.target)()
        try:
            await self._apply(step.action, target)
        except (DrillError, AdminError, OSError, subprocess.TimeoutExpired) as exc:
            self._failures.append(f"step {step.action} {target} ({where}): {exc}")

    def _condition(self, after: str) -> Callable[[], bool]:
        last = self._fault_targets[-1] if self._fault_targets else None
        if after == "detected":
            return lambda: last is None or last not in self._listed
        if after == "evicted":
            return lambda: last is None or last not in self._where.values()
        return self._settled

    def _settled(self) -> bool:
        running = {n.name for n in self.cluster.members if n.running()}
        return all(v is not None for v in self._where.values()) and running <= self._listed

    async def _wait(self, cond: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cond():
                return True
            await asyncio.sleep(SAMPLE_S)
        return cond()

    def _last_target(self) -> str:
        return self._fault_targets[-1] if self._fault_targets else self.cluster.members[0].name

    def _busiest(self) -> str:
        counts = Counter(s for s in self._where.values() if s is not None and s != "controller")
        return counts.most_common(1)[0][0] if counts else self.cluster.members[0].name

    async def _apply(self, action: str, target: str) -> None:
        node = self.node(target)
        now = self.now()
        if action == "kill":
            node.kill()
        elif action == "stop":
            node.signal(signal.SIGSTOP)
        elif action == "cont":
            node.signal(signal.SIGCONT)
        elif action == "restart":
            self.timeline.event(now, action, target)
            self.progress.line(f"{now:7.2f} s  {action} {target}")
            self._fault_targets.append(target)
            node.signal(signal.SIGTERM)
            proc = node.proc
            if proc is not None:
                await asyncio.to_thread(proc.wait, 15)
            await asyncio.to_thread(node.start)
            return
        elif action == "start":
            if not node.running():
                await asyncio.to_thread(node.start)
        elif action in ("link_down", "link_up", "partition", "heal"):
            assert self.topology is not None  # refused in __init__ otherwise
            i = self.cluster.nodes.index(node)
            if action.startswith("link"):
                await asyncio.to_thread(self.topology.link, i, action == "link_up")
            else:
                await asyncio.to_thread(self.topology.partition, i, action == "partition")
        elif action in ("drain", "undrain"):
            member_id = await asyncio.to_thread(self._member_id, node)
            with self.cluster.controller.client() as c:
                await asyncio.to_thread(c.call, "ClusterMemberDrain" if action == "drain" else "ClusterMemberUndrain",
                                        {"Id_u32": member_id})
        else:
            raise DrillError(f"{action}: not applicable on loopback")
        self.timeline.event(now, action, target)
        self.progress.line(f"{now:7.2f} s  {action} {target}")
        if action in FAULTS:
            self._fault_targets.append(target)

    def _member_id(self, node: Node) -> int:
        with self.cluster.controller.client() as c:
            for row in c.call("EnumFarmMember")["FarmMemberList"]:
                if not row["Controller_bool"] and self._name_of_id(c, row["Id_u32"]) == node.name:
                    return int(row["Id_u32"])
        raise DrillError(f"{node.name} is not in the member list")

    def _name_of_id(self, c: AdminClient, member_id: int) -> str | None:
        """The node a member id of the controller's list is (cached: a rejoin gets a new id)."""
        if member_id not in self._name_by_id:
            info = c.call("GetFarmInfo", {"Id_u32": member_id})
            self._name_by_id[member_id] = next(
                (n.name for n in self.cluster.members
                 if n.port in info["Ports_u32"] and (self.topology is None or info["Ip_ip"] == n.address)), None)
        return self._name_by_id[member_id]

    def listed_names(self) -> set[str]:
        """The controller and the members in its member list now."""
        with self.cluster.controller.client() as c:
            names = {"controller"}
            for row in c.call("EnumFarmMember")["FarmMemberList"]:
                if row["Controller_bool"]:
                    continue
                try:
                    name = self._name_of_id(c, row["Id_u32"])
                except AdminError:
                    continue  # evicted between the two calls: not listed any more
                if name is not None:
                    names.add(name)
            return names

    async def _sample(self, done: asyncio.Event) -> None:
        for _ in range(int(self.scenario.duration_s / SAMPLE_S) + 100):
            if done.is_set():
                return
            self._where = {c.name: self.name_of(c.server()) for c in self.clients}
            now = self.now()
            self.timeline.sessions(now, self._where)
            counts = Counter(s for s in self._where.values() if s is not None)
            down = sum(s is None for s in self._where.values())
            listed = " ".join(sorted(self._listed))
            self.progress.status("sessions: " + " ".join(
                f"{n.name}={counts.get(n.name, 0)}" for n in self.cluster.nodes) + f" down={down}  listed: {listed}",
                f"{now:6.1f} s  ")
            await asyncio.sleep(SAMPLE_S)

    async def _poll_members(self, done: asyncio.Event) -> None:
        for _ in range(int(self.scenario.duration_s / MEMBER_POLL_S) + 100):
            if done.is_set():
                return
            try:
                self._listed = await asyncio.to_thread(self.listed_names)
                self.timeline.members(self.now(), self._listed)
            except AdminError as exc:  # the controller itself is down or restarting
                log.debug("member list: %s", exc)
                self._listed = set()
                self.timeline.members(self.now(), set())
            await asyncio.sleep(MEMBER_POLL_S)

    async def _ping(self, c: DrillClient, done: asyncio.Event) -> None:
        """Ping the peer every PING_S; an answer is for the ping with its sequence number."""
        assert c.peer is not None and c.client.ip and c.peer.client.ip
        sent: dict[int, float] = {}
        answered: set[int] = set()

        async def collect() -> None:
            while True:
                try:
                    frame = await c.client.receive(PING_S)
                except asyncio.TimeoutError:
                    continue
                e = fr.parse_echo(frame)
                if e is not None and e.reply and e.ident == 0x5644:
                    answered.add(e.seq)

        collector = asyncio.ensure_future(collect())
        try:
            for seq in range(65536):
                if done.is_set():
                    break
                frame = fr.icmp_echo(c.client.mac, c.peer.client.mac, c.client.ip, c.peer.client.ip,
                                     ident=0x5644, seq=seq)
                sent[seq] = self.now()
                await c.client.send_frames([frame], wait_s=0)
                await asyncio.sleep(PING_S)
            await asyncio.sleep(0.5)  # the last answers in flight
        finally:
            collector.cancel()
            self._probes += [(t, seq in answered) for seq, t in sent.items()]


def _hubs_of(node: Node) -> set[str]:
    try:
        with node.client() as c:
            return {h["HubName_str"] for h in c.call("EnumHub")["HubList"]}
    except AdminError:
        return set()
