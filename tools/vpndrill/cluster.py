"""A local vpncluster for drills: one controller and N member `vpnd`
processes on 127.0.0.1, each with its own state dir in a temp dir and its own
listener port, set up with the admin calls vpnctl makes
(ClusterSettingController = SetFarmSetting type 1, ClusterSettingMember =
SetFarmSetting type 2) through tools/vpnctl/client.py `AdminClient`.

Processes: every vpnd is started in its own session (a Ctrl-C at the
terminal reaches vpndrill only, which then stops them in order) and stopped
by its PID (`stop_pid`): SIGCONT (a stopped process cannot act on SIGTERM),
SIGTERM, SIGKILL after STOP_WAIT_S. Every PID ever started is kept in `pids`
so a caller can check afterwards that none is left. `LocalCluster.close()` is
idempotent and runs from `with`, also on KeyboardInterrupt.

Members are told apart by their public port (all run on one host, so the
host names are equal): the controller's EnumFarmMember lists row ids, and
GetFarmInfo of an id we have not seen gives its port (cached; a rejoin gets a
new id, so one extra call per rejoin, not per poll). `drain`/`undrain`
(ClusterMemberDrain/ClusterMemberUndrain) and `drain_state` name a member by
its node.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from node.cluster.member_discovery import DiscoveryFailed, discover
from tools.vpnctl.client import AdminClient, AdminError

log = logging.getLogger("vpndrill")
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
LIVENESS_ENV = "VPNCLUSTER_LIVENESS_S"
READY_TIMEOUT_S = 20.0
JOIN_TIMEOUT_S = 30.0
STOP_WAIT_S = 10.0
POLL_S = 0.05


class DrillError(Exception):
    """The drill cannot go on (a node did not start, a member did not join);
    the message is the one line the operator sees."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (a hint: `Node.start` retries if it got taken)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def stop_pid(proc: subprocess.Popen, name: str = "process", wait_s: float = STOP_WAIT_S) -> int:
    """Stop a process we started, by its PID: SIGCONT, SIGTERM, and SIGKILL if
    it has not exited within `wait_s`. Returns its exit status."""
    if proc.poll() is not None:
        return proc.returncode
    os.kill(proc.pid, signal.SIGCONT)
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        log.warning("%s: pid %d ignored SIGTERM for %g s, SIGKILL", name, proc.pid, wait_s)
        proc.kill()
        proc.wait(wait_s)
    return proc.returncode


def wait_until(cond, what: str, timeout_s: float, step_s: float = POLL_S):
    """Poll `cond()` until truthy (returned) or raise DrillError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise DrillError(f"{what}: not within {timeout_s:g} s")
        time.sleep(step_s)


@dataclass
class Node:
    """One vpnd process (restartable: same state dir and port). Its password
    file and log sit beside the state dir, named after the node. The one
    place that starts and stops a vpnd for drills, the demo and the tests
    (tests/vpnd_proc.py)."""

    name: str
    state_dir: Path
    password: str
    env: dict[str, str] | None = None
    """The process environment (None: this process's)."""
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    pids: list[int] = field(default_factory=list)
    hosts: tuple[str, ...] = ("127.0.0.1",)
    """The addresses vpnd listens on, all on `port`; `address` among them."""
    address: str = "127.0.0.1"
    """Where admin calls, members and clients reach it (its own IP when it runs in a namespace)."""

    @property
    def log_path(self) -> Path:
        return self.state_dir.parent / f"{self.name}.log"

    @property
    def pw_file(self) -> Path:
        """The admin password file vpnd reads (written by spawn)."""
        return self.state_dir.parent / f"{self.name}.pw"

    def client(self) -> AdminClient:
        return AdminClient(self.address, self.port, self.password, connect_timeout_s=2.0, read_timeout_s=10.0)

    def spawn(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.pw_file.write_text(self.password + "\n")
        self.pw_file.chmod(0o600)  # a password file, as an operator would keep it (the demo shows it)
        listen = [word for host in self.hosts for word in ("--listen", f"{host}:{self.port}")]
        with open(self.log_path, "ab") as out:
            self.proc = self.popen(
                [sys.executable, "-m", "node.daemon", "--state-dir", str(self.state_dir), *listen,
                 "--admin-password-file", str(self.pw_file)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=self.env)
        self.pids.append(self.proc.pid)
        log.info("%s: started pid %d on %s", self.name, self.proc.pid, " ".join(listen[1::2]))

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        """Start vpnd here, in its own session. A subclass starts it elsewhere
        (tests/netns/nsvpnd.py: in a network namespace); its PID must be vpnd's."""
        return subprocess.Popen(argv, start_new_session=True, **kwargs)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise DrillError(f"{self.name}: vpnd exited with {code}: {self.last_log_line()}")
            try:
                with self.client() as c:
                    c.call("Test", {"IntValue_u32": 1})
                return
            except AdminError:
                time.sleep(POLL_S)
        raise DrillError(f"{self.name}: vpnd not answering within {timeout_s:g} s")

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start and wait until it answers (spawn, then wait_started)."""
        self.spawn()
        self.wait_started(timeout_s)

    def wait_started(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """After spawn(): wait until it answers; if the port was taken meanwhile
        (only on the first start: a restart keeps its port), spawn again on
        another one, three tries in all."""
        first_start = len(self.pids) == 1
        for attempt in range(3):
            if attempt:
                self.port = free_port()
                self.spawn()
            try:
                self.wait_ready(timeout_s)
                return
            except DrillError:
                if self.running() or "cannot listen" not in self.log_tail() or not first_start:
                    raise
        raise DrillError(f"{self.name}: no free port found")

    def live_process(self) -> subprocess.Popen | None:
        """The vpnd process while it runs; None before spawn() and once it exited."""
        proc = self.proc
        return proc if proc is not None and proc.poll() is None else None

    def running(self) -> bool:
        return self.live_process() is not None

    def signal(self, sig: int) -> None:
        proc = self.live_process()
        if proc is not None:
            os.kill(proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL, as a crash; reaped at once."""
        proc = self.live_process()
        if proc is not None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(STOP_WAIT_S)

    def stop(self) -> int | None:
        """SIGCONT, SIGTERM, and SIGKILL if it has not exited within STOP_WAIT_S.
        Returns the exit status (None if it was never started)."""
        return None if self.proc is None else stop_pid(self.proc, self.name)

    def log_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def last_log_line(self) -> str:
        lines = self.log_tail().strip().splitlines()
        return lines[-1] if lines else "(no log)"


def discover_bus(port: int, host: str = "127.0.0.1") -> bool:
    """True once the controller's bus is up: the discovery a joining member
    makes first (node/cluster/member_discovery.py) answers."""
    try:
        asyncio.run(discover(host, port))
    except DiscoveryFailed:
        return False
    return True


class LocalCluster:
    """Controller + `members` member nodes in `base` (a temp dir the caller owns).

    `weights` are the members' weights (default 100 each); `controller_only`
    is the controller's "controller functions only" setting; `make_node(i,
    name, state_dir, password, env)` makes node i (0: the controller) when
    they run elsewhere than here on 127.0.0.1 (tools/vpndrill/lab/nscluster.py)."""

    def __init__(self, base: Path, members: int, liveness_s: float | None = None, *,
                 weights: Sequence[int] | None = None, controller_only: bool = False,
                 make_node: Callable[[int, str, Path, str, dict[str, str]], Node] | None = None) -> None:
        if weights is not None and len(weights) != members:
            raise ValueError(f"{members} members but {len(weights)} weights")
        env = dict(os.environ)
        if liveness_s is not None:
            env[LIVENESS_ENV] = f"{liveness_s:g}"
        password = secrets.token_urlsafe(12)
        make = make_node or (lambda i, name, state, pw, env: Node(name, state, pw, env))
        self.controller = make(0, "controller", base / "controller", password, env)
        self.members = [make(i + 1, f"member{i + 1}", base / f"member{i + 1}", password, env)
                        for i in range(members)]
        self.weights = list(weights) if weights is not None else [100] * members
        self.controller_only = controller_only
        self._ctl: AdminClient | None = None
        self._port_of_id: dict[int, int] = {}

    @property
    def nodes(self) -> list[Node]:
        return [self.controller, *self.members]

    @property
    def pids(self) -> list[int]:
        return [pid for n in self.nodes for pid in n.pids]

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start every node, make the controller and the members, wait until all are listed."""
        for n in self.nodes:
            n.spawn()
        for n in self.nodes:
            n.wait_started()
        self._ctl = self.controller.client()
        self._ctl.call("SetFarmSetting", {"ServerType_u32": 1, "Weight_u32": 100,
                                          "ControllerOnly_bool": self.controller_only})
        wait_until(lambda: discover_bus(self.controller.port, self.controller.address), "controller bus up",
                   READY_TIMEOUT_S)
        for m, weight in zip(self.members, self.weights):
            with m.client() as c:
                c.call("SetFarmSetting", {
                    "ServerType_u32": 2, "ControllerName_str": self.controller.address,
                    "ControllerPort_u32": self.controller.port,
                    "MemberPasswordPlaintext_str": self.controller.password, "PublicIp_ip": m.address,
                    "Ports_u32": [m.port], "Weight_u32": weight})
        want = {m.port for m in self.members}  # in namespaces every member may have the same port: count rows too
        wait_until(lambda: want <= self.listed_ports() and len(self.member_rows()) >= len(self.members),
                   f"all {len(self.members)} members listed", JOIN_TIMEOUT_S)
        log.info("cluster up: controller %s:%d, members %s", self.controller.address, self.controller.port,
                 ", ".join(f"{m.address}:{m.port}" for m in self.members))

    def member_rows(self) -> list[dict]:
        """The controller's EnumFarmMember rows now, without its own row."""
        assert self._ctl is not None, "start() first"
        return [r for r in self._ctl.call("EnumFarmMember")["FarmMemberList"] if not r["Controller_bool"]]

    def listed_ports(self) -> set[int]:
        """Public ports of the members in the controller's EnumFarmMember now."""
        assert self._ctl is not None
        ports = set()
        for row in self.member_rows():
            mid = row["Id_u32"]
            if mid not in self._port_of_id:
                try:
                    info = self._ctl.call("GetFarmInfo", {"Id_u32": mid})
                except AdminError:
                    continue  # evicted between the two calls: not listed any more
                self._port_of_id[mid] = info["Ports_u32"][0] if info["Ports_u32"] else 0
            ports.add(self._port_of_id[mid])
        return ports

    def member_row(self, node: Node) -> dict | None:
        """The controller's EnumFarmMember row of member `node` now, None while
        it is not listed. Found by its public port, uncached: a restarted
        controller numbers its members anew."""
        assert self._ctl is not None, "start() first"
        for row in self.member_rows():
            try:
                if self._ctl.call("GetFarmInfo", {"Id_u32": row["Id_u32"]})["Ports_u32"] == [node.port]:
                    return row
            except AdminError:
                continue  # evicted between the two calls
        return None

    def drain(self, node: Node, rate: int = 0) -> dict:
        """ClusterMemberDrain of member `node`: no new session, its sessions move
        away at `rate` per second (0: the controller's default). Its answer."""
        return self._member_call("ClusterMemberDrain", node, {"Rate_u32": rate})

    def undrain(self, node: Node) -> dict:
        """ClusterMemberUndrain of member `node`: it takes sessions again."""
        return self._member_call("ClusterMemberUndrain", node, {})

    def drain_state(self, node: Node) -> str | None:
        """"draining", "drained", "" (not drained), or None while `node` is not listed."""
        row = self.member_row(node)
        return None if row is None else str(row.get("DrainState_str", ""))

    def _member_call(self, method: str, node: Node, params: dict) -> dict:
        assert self._ctl is not None, "start() first"
        row = self.member_row(node)
        if row is None:
            raise DrillError(f"{node.name} is not in the controller's member list")
        return self._ctl.call(method, {"Id_u32": row["Id_u32"], **params})

    def close(self) -> None:
        """Stop every node (members first), each by its PID. Idempotent."""
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None
        for n in [*self.members, self.controller]:
            try:
                n.stop()
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.error("%s: could not stop pid %s: %s", n.name, n.proc.pid if n.proc else "-", exc)
