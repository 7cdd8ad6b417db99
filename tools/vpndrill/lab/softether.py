"""Run Debian's real SoftEther VPN Server (5.01) beside our code, isolated.

How an instance is started (facts in /work/shared/softether-lab.md):
- Each instance gets a private base directory with lib/, log/, run/, tmp/.
  Inside `unshare -m -u --propagation private` (and `ip netns exec NS` when a
  network namespace is given) those are bind-mounted over /var/lib/softether,
  /var/log/softether, /run/softether and /tmp, the hostname is set (the
  cluster member list shows it), then `vpnserver execsvc` is exec'ed. So the
  PID we spawn IS SoftEther's watchdog (parent); it forks the real server
  (child) and respawns it if it dies. Both PIDs are recorded; stop() kills
  the parent first, then the child, by PID only.
- Instead of letting the server write its default configuration (listeners
  on 443/992/1194/5555 on every address, DDNS, keep-alive and NAT-T probes to
  the Internet, an empty admin password), we write a small
  vpn_server.config before the first start: one TCP listener on a free high
  port, `ListenIP 127.0.0.1` (TCP and UDP sockets bind loopback only), no UDP
  ports, DDNS disabled, UseKeepConnect false, DisableNatTraversal true, and
  the admin password hash. SoftEther fills in everything else (certificate,
  DEFAULT-less hub list) on its own. Parallel instances therefore never
  collide and nothing leaves loopback.
- Ready = a JSON-RPC GetServerInfo with the admin password succeeds.

Used by the tests (tests/softether_lab.py adds the pytest fixtures and skips)
and by the benchmarks in bench/. Extension points:
- `SoftEtherLab` owns any number of instances and stops them all at teardown
  (also on failure): `lab.server("ctl")`, `lab.server("m1", netns="ns1",
  listen_ip="10.0.0.2")`, then `ClusterSettingMember` through `server.rpc` or
  `server.vpncmd`.
- `lab.client(netns)` starts a real vpnclient the same way (its own
  directories and hostname; its management port 9931 on 127.0.0.1 is fixed,
  so one client per network namespace); ready = `vpncmd 127.0.0.1 /CLIENT
  /CMD VersionGet` works. Drive it with `client.must("NicCreate", "vpn1")`,
  `AccountCreate ...`, etc. (softether-lab.md lists the verbs).
- A new kind of SoftEther program is a `_Instance` subclass with `program`
  and `wait_ready()`.
"""

from __future__ import annotations

import abc
import base64
import contextlib
import csv
import ctypes
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from node.softether.sha0 import hash_admin_password
from tools.vpnctl.client import AdminClient, AdminError, AuthError
from tools.vpndrill.cluster import free_port

SOFTETHER_DIR = Path("/usr/libexec/softether")
VPNSERVER = SOFTETHER_DIR / "vpnserver" / "vpnserver"
VPNCLIENT = SOFTETHER_DIR / "vpnclient" / "vpnclient"
VPNCMD = SOFTETHER_DIR / "vpncmd" / "vpncmd"
MOUNTS = {"lib": "/var/lib/softether", "log": "/var/log/softether", "run": "/run/softether", "tmp": "/tmp"}
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
SERVER_TYPE_STANDALONE, SERVER_TYPE_CONTROLLER, SERVER_TYPE_MEMBER = 0, 1, 2
T = TypeVar("T")


class LabError(RuntimeError):
    """A SoftEther instance did not start, answer or stop as expected."""


class PortTaken(LabError):
    """Another server answered on the port chosen for a new instance (its
    password or hostname is not ours): a race with a parallel test run."""


def skip_reason(*, need_client: bool = False) -> str | None:
    """Why the real-SoftEther tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root (mount/UTS namespaces for the SoftEther binaries)"
    needed = [VPNSERVER, VPNCMD] + ([VPNCLIENT] if need_client else [])
    missing = [str(p) for p in needed if not os.access(p, os.X_OK)]
    if missing:
        return "Debian SoftEther packages not installed (missing " + ", ".join(missing) + ")"
    if shutil.which("unshare") is None:
        return "unshare(1) not found"
    return None


def server_config(*, port: int, password: str, listen_ip: str = "127.0.0.1", extra_ports: tuple[int, ...] = ()) -> str:
    """The vpn_server.config written before the first start (see module doc)."""
    hashed = base64.b64encode(hash_admin_password(password)).decode()
    listeners = "".join(
        f"\t\tdeclare Listener{i}\n\t\t{{\n\t\t\tbool DisableDos false\n"
        f"\t\t\tbool Enabled true\n\t\t\tuint Port {p}\n\t\t}}\n"
        for i, p in enumerate((port, *extra_ports))
    )
    return (
        "# Software Configuration File\n"
        "declare root\n{\n"
        "\tuint ConfigRevision 0\n"
        "\tdeclare DDnsClient\n\t{\n\t\tbool Disabled true\n\t}\n"
        f"\tdeclare ListenerList\n\t{{\n{listeners}\t}}\n"
        "\tdeclare ServerConfiguration\n\t{\n"
        "\t\tbool DisableNatTraversal true\n"
        "\t\tbool UseKeepConnect false\n"
        "\t\tbool DisableIPv6Listener true\n"
        f"\t\tstring ListenIP {listen_ip}\n"
        "\t\tstring PortsUDP $\n"
        f"\t\tbyte HashedPassword {hashed}\n"
        "\t}\n}\n"
    )


_ISOLATE = (
    'set -e; b="$1"; shift; h="$1"; shift; '
    "for d in /var/lib/softether /var/log/softether /run/softether; do mkdir -p $d; done; "
    'mount --bind "$b/lib" /var/lib/softether; mount --bind "$b/log" /var/log/softether; '
    'mount --bind "$b/run" /run/softether; mount --bind "$b/tmp" /tmp; '
    'hostname "$h"; exec "$@"'
)


def _spawn_isolated(
    program: list[str], base_dir: Path, hostname: str, netns: str | None
) -> subprocess.Popen[bytes]:
    """Start `program` with private SoftEther directories and hostname.

    The returned process is `program` itself (every wrapper execs).
    """
    for sub in MOUNTS:
        (base_dir / sub).mkdir(parents=True, exist_ok=True)
    cmd = ["unshare", "-m", "-u", "--propagation", "private", "sh", "-c", _ISOLATE, "sh", str(base_dir), hostname, *program]
    if netns is not None:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    out = open(base_dir / "stdout.txt", "wb")
    try:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        out.close()


_CLONE_NEWNET = 0x40000000


def in_netns(netns: str | None, fn: Callable[[], T], timeout_s: float = 60.0) -> T:
    """Run `fn()` with its sockets in network namespace `netns` (None: here).

    setns(2) on a network namespace changes only the calling thread, so `fn`
    runs in a short-lived thread that joins the namespace first; sockets keep
    the namespace they were created in.
    """
    if netns is None:
        return fn()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {netns!r} failed")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as e:  # re-raised in the caller
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise LabError(f"call in namespace {netns!r} did not finish in {timeout_s:.0f}s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (a /proc scan: a PID lookup, not a name match)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may contain spaces or parentheses: split after the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != b"Z"


class _Instance(abc.ABC):
    """One SoftEther program under its watchdog: start, stop and kill by PID."""

    program: Path

    def __init__(self, *, name: str, base_dir: Path, netns: str | None) -> None:
        self.name = name
        self.base_dir = base_dir
        self.netns = netns
        self.proc: subprocess.Popen[bytes] | None = None
        self.parent_pid: int | None = None
        self.child_pid: int | None = None

    @abc.abstractmethod
    def wait_ready(self, timeout_s: float) -> None:
        """Return when the program answers its management port; LabError after `timeout_s`."""

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Spawn the program and wait until it is ready; LabError otherwise
        (the instance is stopped before raising)."""
        self.proc = _spawn_isolated([str(self.program), "execsvc"], self.base_dir, self.name, self.netns)
        self.parent_pid = self.proc.pid
        try:
            self.wait_ready(timeout_s)
            self.child_pid = self._find_child(timeout_s=5.0)
        except BaseException:
            self.stop()
            raise

    def _find_child(self, timeout_s: float) -> int:
        assert self.parent_pid is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            kids = children_of(self.parent_pid)
            if kids:
                return kids[0]
            time.sleep(0.05)
        raise LabError(f"{self.name}: the watchdog {self.parent_pid} has no server child")

    def stop(self) -> None:
        """Kill the watchdog (parent) first so it cannot respawn, then the
        server (child). Idempotent; waits until both are gone."""
        if self.parent_pid is None:
            return
        victims = [self.parent_pid, *children_of(self.parent_pid)]
        if self.child_pid is not None and self.child_pid not in victims:
            victims.append(self.child_pid)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(_alive(p) for p in victims[1:]) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.parent_pid = None

    def kill_server_child(self) -> int:
        """Kill only the real server (the watchdog respawns it); returns its PID."""
        assert self.parent_pid is not None
        pid = self._find_child(timeout_s=5.0)
        os.kill(pid, signal.SIGKILL)
        return pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _exec_argv(self, argv: list[str]) -> list[str]:
        return argv if self.netns is None else ["ip", "netns", "exec", self.netns, *argv]

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise LabError(f"{self.name}: {self.program.name} exited with {self.proc.returncode}; {self._log_tail()}")

    def _log_tail(self, lines: int = 8) -> str:
        logs = sorted((self.base_dir / "log").rglob("*.log"), key=lambda p: p.stat().st_mtime)
        text = ""
        for path in logs[-1:]:
            text = " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
        out = self.base_dir / "stdout.txt"
        if out.exists():
            text += " | stdout: " + out.read_text(errors="replace")[-300:]
        return f"log: {text or '(empty)'}"


class SoftEtherServer(_Instance):
    """One running SoftEther VPN Server; admin through JSON-RPC or vpncmd."""

    program = VPNSERVER

    def __init__(
        self, *, name: str, base_dir: Path, host: str, port: int, password: str, netns: str | None
    ) -> None:
        super().__init__(name=name, base_dir=base_dir, netns=netns)
        self.host = host
        self.port = port
        self.password = password

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.base_dir / "lib" / "vpn_server.config"

    def wait_ready(self, timeout_s: float) -> None:
        self.wait_admin(timeout_s)

    def client(self, *, hub: str = "", password: str | None = None, timeout_s: float = 10.0) -> AdminClient:
        """A JSON-RPC admin client (server admin unless `hub` is given). It
        connects from the caller's namespace: see rpc() for netns servers."""
        return AdminClient(
            self.host,
            self.port,
            self.password if password is None else password,
            admin_hub=hub,
            connect_timeout_s=min(timeout_s, 5.0),
            read_timeout_s=timeout_s,
        )

    def rpc(self, method: str, params: dict[str, Any] | None = None, *, timeout_s: float = 10.0) -> dict[str, Any]:
        """One JSON-RPC call as server admin, from the server's network
        namespace; raises tools.vpnctl.client errors."""

        def call() -> dict[str, Any]:
            with self.client(timeout_s=timeout_s) as c:
                return c.call(method, params or {})

        return in_netns(self.netns, call, timeout_s=timeout_s + 10)

    def wait_admin(self, timeout_s: float = START_TIMEOUT_S, *, server_type: int | None = None) -> dict[str, Any]:
        """Poll GetServerInfo until it answers (and, if given, reports
        `server_type`: after a cluster mode change the old type is reported
        until SoftEther's asynchronous restart is done). Returns the info."""
        deadline = time.monotonic() + timeout_s
        last: Exception | str = "no attempt"
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                info = self.rpc("GetServerInfo", timeout_s=3.0)
            except AuthError as e:
                if self.child_pid is None:  # still starting: that is not our server
                    raise PortTaken(f"{self.name}: {e}") from None
                last = e
            except AdminError as e:
                last = e
            else:
                if info.get("ServerHostName_str") != self.name:
                    raise PortTaken(f"{self.name}: port {self.port} answers as {info.get('ServerHostName_str')!r}")
                if server_type is None or info.get("ServerType_u32") == server_type:
                    return info
                last = f"server type is still {info.get('ServerType_u32')}"
            time.sleep(0.1)
        raise LabError(f"{self.name}: admin not ready after {timeout_s:.0f}s ({last}); {self._log_tail()}")

    def vpncmd(self, *words: str, hub: str | None = None, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run `vpncmd HOST:PORT /SERVER /PASSWORD:.. [/ADMINHUB:hub] /CMD words...`."""
        cmd = [str(VPNCMD), self.address, "/SERVER", f"/PASSWORD:{self.password}"]
        if hub:
            cmd.append(f"/ADMINHUB:{hub}")
        cmd += ["/CMD", *words]
        return _run(self._exec_argv(cmd), timeout_s)

    def flush(self) -> None:
        """Make the server write its configuration file now."""
        res = self.vpncmd("Flush")
        if res.returncode != 0:
            raise LabError(f"{self.name}: vpncmd Flush failed: {res.stdout[-300:]}")


class SoftEtherClient(_Instance):
    """A real SoftEther VPN Client. Its management port (9931 on 127.0.0.1)
    is fixed, so each client needs its own network namespace (`netns`)."""

    program = VPNCLIENT

    def cmd(self, *words: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run `vpncmd 127.0.0.1 /CLIENT /CMD words...` in the client's namespace."""
        return _run(self._exec_argv([str(VPNCMD), "127.0.0.1", "/CLIENT", "/CMD", *words]), timeout_s)

    def must(self, *words: str) -> str:
        """cmd() that raises LabError unless vpncmd succeeded; returns stdout."""
        res = self.cmd(*words)
        if res.returncode != 0:
            raise LabError(f"{self.name}: vpncmd /CLIENT {' '.join(words)} failed: {res.stdout[-400:]}")
        return res.stdout

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            if self.cmd("VersionGet", timeout_s=10).returncode == 0:
                return
            time.sleep(0.2)
        raise LabError(f"{self.name}: client management not ready after {timeout_s:.0f}s; {self._log_tail()}")


def _run(argv: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)


class SoftEtherLab:
    """Owns SoftEther instances for one test; stop_all() at teardown."""

    def __init__(self, base_dir: Path | None = None) -> None:
        self._own_dir = base_dir is None
        self.base_dir = Path(tempfile.mkdtemp(prefix=f"selab-{os.getpid()}-")) if base_dir is None else base_dir
        self.servers: dict[str, SoftEtherServer] = {}
        self.clients: dict[str, SoftEtherClient] = {}

    def server(
        self,
        name: str | None = None,
        *,
        password: str = "labadmin",
        port: int | None = None,
        netns: str | None = None,
        listen_ip: str = "127.0.0.1",
        extra_ports: tuple[int, ...] = (),
        timeout_s: float = START_TIMEOUT_S,
    ) -> SoftEtherServer:
        """Start a SoftEther VPN Server and wait until admin works.

        name: the instance's hostname (unique in the lab; default se<n>-<pid>).
        port: its TCP listener (default: a free high port on `listen_ip`).
        netns: a network namespace (created by the caller) to run it in.
        extra_ports: more TCP listeners, e.g. public ports for a member.
        """
        name = name or f"se{len(self.servers)}-{os.getpid()}"
        if name in self.servers:
            raise LabError(f"instance {name!r} already exists in this lab")
        for _ in range(2):  # a port chosen here may be lost to a parallel run: choose again
            try:
                return self._start_server(name, port, password, netns, listen_ip, extra_ports, timeout_s)
            except PortTaken:
                if port is not None:
                    raise
        return self._start_server(name, port, password, netns, listen_ip, extra_ports, timeout_s)

    def _start_server(
        self,
        name: str,
        port: int | None,
        password: str,
        netns: str | None,
        listen_ip: str,
        extra_ports: tuple[int, ...],
        timeout_s: float,
    ) -> SoftEtherServer:
        if port is None:
            port = free_port(listen_ip) if netns is None else random.randint(20000, 60000)
        base = self.base_dir / name
        shutil.rmtree(base, ignore_errors=True)
        (base / "lib").mkdir(parents=True)
        (base / "lib" / "vpn_server.config").write_text(
            server_config(port=port, password=password, listen_ip=listen_ip, extra_ports=extra_ports)
        )
        srv = SoftEtherServer(name=name, base_dir=base, host=listen_ip, port=port, password=password, netns=netns)
        self.servers[name] = srv
        srv.start(timeout_s)
        return srv

    def client(self, netns: str, name: str | None = None, *, timeout_s: float = START_TIMEOUT_S) -> SoftEtherClient:
        """Start a SoftEther VPN Client in `netns` (created by the caller, for
        example with tools/vpndrill/lab/netns.py) and wait until it answers vpncmd."""
        name = name or f"sc{len(self.clients)}-{os.getpid()}"
        if name in self.clients or any(c.netns == netns for c in self.clients.values()):
            raise LabError(f"a client named {name!r} or in namespace {netns!r} already exists")
        cli = SoftEtherClient(name=name, base_dir=self.base_dir / name, netns=netns)
        self.clients[name] = cli
        cli.start(timeout_s)
        return cli

    def stop_all(self) -> None:
        for inst in [*self.clients.values(), *self.servers.values()]:
            inst.stop()
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> SoftEtherLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


# ---- client account helpers (for tests that drive a real vpnclient) ------------------------


def account_status(client: SoftEtherClient, account: str) -> dict[str, str]:
    """`AccountStatusGet ACCOUNT` as {item: value} (vpncmd /CSV). Empty when
    the account is not connecting (vpncmd answers with an error then)."""
    res = _run(client._exec_argv([str(VPNCMD), "127.0.0.1", "/CLIENT", "/CSV", "/CMD", "AccountStatusGet", account]),
               30.0)
    if res.returncode != 0:
        return {}
    rows = list(csv.reader(res.stdout.splitlines()))
    return {row[0]: row[1] for row in rows[1:] if len(row) >= 2}


def wait_account(
    client: SoftEtherClient,
    account: str,
    predicate: Callable[[dict[str, str]], bool],
    timeout_s: float = START_TIMEOUT_S,
    *,
    extra: Callable[[], str] = lambda: "",
) -> dict[str, str]:
    """Poll `account_status` until `predicate(status)` holds; returns that
    status. LabError after `timeout_s` (with the last status, the client log
    tail and `extra()`, e.g. the server's log)."""
    deadline = time.monotonic() + timeout_s
    status: dict[str, str] = {}
    while time.monotonic() < deadline:
        client._check_alive()
        status = account_status(client, account)
        if predicate(status):
            return status
        time.sleep(0.2)
    raise LabError(f"{client.name}: account {account!r} not as expected after {timeout_s:.0f}s: "
                   f"{status}; {client._log_tail()}\n{extra()}")
