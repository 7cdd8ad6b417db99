"""Network-namespace test lab: namespaces, veth pairs, bridges, processes.

Everything a `Lab` creates carries a name unique to this process and lab
(`vct<pid>x<n>` for namespaces, `vc<pid><n>` + suffix for interfaces, at
most 15 bytes), is recorded, and is removed by `close()` -- also when the
test failed -- in reverse order: processes killed (by their own Popen
handles), links deleted, namespaces removed (which also destroys every
interface still inside them). Netlink goes through pyroute2; only programs
(ping, iperf3, ethtool, servers) run as subprocesses, via `ip netns exec`.

Used by tests (tests/netns/lab.py adds the `requires_root` markers, the `lab`
fixture is in tests/netns/conftest.py) and benchmarks (bench/): use a Lab as
a context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import itertools
import os
import signal
import subprocess
import threading
from typing import Iterator, Sequence

from pyroute2 import IPRoute, NetNS, netns

_counter = itertools.count(1)
TUN_PATH = "/dev/net/tun"


def root_skip_reason() -> str | None:
    """Why root-only tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, TAP devices)"
    if not os.path.exists(TUN_PATH):
        return f"needs {TUN_PATH} (TUN/TAP driver)"
    return None


def _netlink(method):
    """pyroute2's sync API refuses to run inside a running event loop; from
    there, run the call in a short-lived thread (which inherits the caller's
    network namespace) and wait for it."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return method(*args, **kwargs)
        box: dict = {}

        def target():
            try:
                box["value"] = method(*args, **kwargs)
            except BaseException as e:  # re-raised in the caller
                box["error"] = e
        t = threading.Thread(target=target)
        t.start()
        t.join(60)
        if "error" in box:
            raise box["error"]
        if t.is_alive():
            raise TimeoutError(f"netlink call {method.__name__} did not finish")
        return box.get("value")
    return wrapper


class Lab:
    """Creates namespaces/links for one test and always removes them."""

    def __init__(self) -> None:
        self.tag = f"{os.getpid()}x{next(_counter)}"
        self._ifn = itertools.count(1)
        self._namespaces: list[str] = []
        self._root_links: list[str] = []
        self._procs: list[subprocess.Popen] = []

    # ---- naming ------------------------------------------------------------

    def ifname(self, suffix: str = "") -> str:
        """A fresh interface name, unique across concurrent test runs."""
        name = f"vc{os.getpid()}{next(self._ifn):x}{suffix}"
        if len(name) > 15:
            name = f"vc{os.getpid() % 100000}{next(self._ifn):x}{suffix}"[:15]
        return name

    # ---- namespaces and links -------------------------------------------------

    @_netlink
    def netns(self, hint: str = "") -> str:
        """Create a namespace (loopback up) and return its name."""
        name = f"vct{self.tag}{hint}{len(self._namespaces) + 1}"
        netns.create(name)
        self._namespaces.append(name)
        with NetNS(name) as ns:
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        return name

    @contextlib.contextmanager
    def iproute(self, ns: str | None) -> Iterator[IPRoute]:
        """An IPRoute for the root namespace (None) or a NetNS for `ns`."""
        ipr = IPRoute() if ns is None else NetNS(ns)
        try:
            yield ipr
        finally:
            ipr.close()

    @_netlink
    def veth(self, ns_a: str | None, ns_b: str | None) -> tuple[str, str]:
        """A veth pair with end A in `ns_a` and end B in `ns_b` (None: root ns);
        both ends are up. Returns (name_a, name_b)."""
        a, b = self.ifname("a"), self.ifname("b")
        with self.iproute(None) as ipr:
            ipr.link("add", ifname=a, kind="veth", peer={"ifname": b})
            self._root_links.append(a)
            for name, ns in ((a, ns_a), (b, ns_b)):
                if ns is not None:
                    ipr.link("set", index=ipr.link_lookup(ifname=name)[0], net_ns_fd=ns)
        for name, ns in ((a, ns_a), (b, ns_b)):
            self.up(ns, name)
        return a, b

    @_netlink
    def bridge(self, ns: str | None, members: Sequence[str] = ()) -> str:
        """A Linux bridge in `ns` enslaving `members`, up."""
        name = self.ifname("br")
        with self.iproute(ns) as ipr:
            ipr.link("add", ifname=name, kind="bridge")
            if ns is None:
                self._root_links.append(name)
            br = ipr.link_lookup(ifname=name)[0]
            for m in members:
                ipr.link("set", index=ipr.link_lookup(ifname=m)[0], master=br)
            ipr.link("set", index=br, state="up")
        return name

    def track_link(self, name: str) -> None:
        """Delete root-namespace link `name` at teardown if it still exists."""
        self._root_links.append(name)

    @_netlink
    def up(self, ns: str | None, ifname: str, *, mtu: int | None = None) -> None:
        with self.iproute(ns) as ipr:
            index = ipr.link_lookup(ifname=ifname)[0]
            if mtu is not None:
                ipr.link("set", index=index, mtu=mtu)
            ipr.link("set", index=index, state="up")

    @_netlink
    def addr(self, ns: str | None, ifname: str, cidr: str) -> None:
        """Add an address like '10.9.0.1/24' (IPv4 or IPv6) and bring the link up."""
        iface = ipaddress.ip_interface(cidr)
        with self.iproute(ns) as ipr:
            index = ipr.link_lookup(ifname=ifname)[0]
            ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        self.up(ns, ifname)

    @_netlink
    def links(self, ns: str | None) -> list[str]:
        """Names of the links in `ns`."""
        with self.iproute(ns) as ipr:
            return [link.get("ifname") for link in ipr.get_links()]

    @_netlink
    def move(self, ifname: str, from_ns: str | None, to_ns: str) -> None:
        """Move a link (e.g. a TAP device) between namespaces."""
        with self.iproute(from_ns) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], net_ns_fd=to_ns)

    def disable_offloads(self, ns: str | None, ifname: str) -> None:
        """Turn off checksum/segmentation offloads: frames read through AF_PACKET
        must carry final checksums and be at most MTU-sized."""
        self.run(ns, ["ethtool", "-K", ifname, "rx", "off", "tx", "off", "tso", "off",
                      "gso", "off", "gro", "off"], check=False)

    @contextlib.contextmanager
    def inside(self, ns: str) -> Iterator[None]:
        """Run the block with this thread in `ns`: sockets, TAP devices and
        IPRoute() objects created here belong to `ns` for their whole life."""
        netns.pushns(ns)
        try:
            yield
        finally:
            netns.popns()

    # ---- programs ----------------------------------------------------------

    @staticmethod
    def argv(ns: str | None, argv: Sequence[str]) -> list[str]:
        return list(argv) if ns is None else ["ip", "netns", "exec", ns, *argv]

    def run(self, ns: str | None, argv: Sequence[str], *, timeout: float = 30.0,
            check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess:
        """Run a program in `ns` to completion (bounded by `timeout`), `input_text` on its stdin."""
        return subprocess.run(self.argv(ns, argv), capture_output=True, text=True,
                              timeout=timeout, check=check, input=input_text)

    def popen(self, ns: str | None, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start a program in `ns`; it is killed at teardown if still running."""
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen(self.argv(ns, argv), start_new_session=True, **kwargs)
        self._procs.append(proc)
        return proc

    # ---- teardown ----------------------------------------------------------

    @_netlink
    def close(self) -> None:
        """Remove everything; keeps going past individual failures."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    # its own session: the group is the process we started and its children
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        self._procs.clear()
        with IPRoute() as ipr:
            for name in reversed(self._root_links):
                found = ipr.link_lookup(ifname=name)
                if found:
                    with contextlib.suppress(Exception):
                        ipr.link("del", index=found[0])
        self._root_links.clear()
        for name in reversed(self._namespaces):
            with contextlib.suppress(Exception):
                netns.remove(name)
        self._namespaces.clear()

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

