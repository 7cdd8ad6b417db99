"""THE real Debian softether-vpnclient (5.01) against OUR cluster: redirect
and takeover.

Topology: tests/netns/cluster_lab.py (a controller that functions only and
3 members, each vpnd in its own namespace on a WAN bridge; every member's
static hub bridged onto one LAN with the LAN host). The real client runs in
the client namespace with its own vpncmd (softether-lab.md), its account
pointed at the controller by IP literal (5.01 clients must be: a DNS name
sends the ticket login back to the controller, softether-protocol.md §5.3),
and the smallest retry interval vpncmd accepts (5 s). It must be redirected
to a member, ping the LAN host over its vpn_vpn1 TAP device (an address on
the LAN subnet, so the ping can only cross the VPN), and, after that member
is killed (kill -9), frozen (SIGSTOP) or drained (vpnctl ClusterMemberDrain:
the member disconnects the session, the client reconnects through the
controller after its retry interval), come back on another member and ping
again. The longest ping gap is printed, never asserted.

Known client bug (kill only): Debian's 5.01 build 9674 is linked with
OpenSSL 3 and never clears OpenSSL's per-thread error queue
(Mayaqua/Network.c SecureRecv; fixed upstream by commit b2ec1bd5, first in
5.02.5185; SoftEtherVPN issue #1995). A killed member's socket ends without
a TLS close_notify, which leaves "unexpected eof while reading" in the
queue of the account's session thread; every later session of that thread
then reads its first "no data yet" from SSL_peek as SSL_ERROR_SSL and drops
its only socket about 100 ms after our welcome, the additional connection it
opens next is refused (the session is gone) and it retries, forever. When
the kill test sees exactly that (sessions on the other members that start
and end within a second with nothing received, from build 9674), it is
reported as an expected failure with that explanation; any other failure
fails. A real SoftEther server fares no better (measured: after its process
is killed and restarted by its watchdog, the same client shows the session
"established" with 0 TCP connections and nothing flowing). A frozen member
does not end its socket, so the client times it out by itself and the
takeover must work (measured gap ~15 s: the client drops its socket after
our 5 s timeout, ends the session ~5 s later, then waits its 5 s retry
interval).
"""

from __future__ import annotations

import re
import signal
import time
from datetime import datetime

import pytest

from tests.netns.cluster_lab import CONTROLLER_IP, HUB, LAN_HOST, LAN_PREFIX, USERS, ClusterLab, Member, PingStream
from tests.netns.lab import Lab, requires_root
from tools.vpndrill.lab.nsvpnd import PORT
from tests.softether_lab import SoftEtherClient, SoftEtherLab, account_status, require_softether

pytestmark = [pytest.mark.softether, *requires_root, pytest.mark.timeout(180)]

USER = "alice"
CLIENT_TAP_IP = f"{LAN_PREFIX}.101"
ACCOUNT, NIC = "cluster", "vpn1"
RESUME_S = 40.0        # measured ~15 s after a freeze (module prose)
ANSWERS = 10           # 1 s of answers at 0.1 s
BUGGY_BUILD = "9674"   # 5.01 with OpenSSL 3 and no ERR_clear_error (module prose)


@pytest.fixture
def lab():
    require_softether(need_client=True)
    with Lab() as the_lab:
        yield the_lab


def client_logs(client: SoftEtherClient) -> str:
    return "\n".join(p.read_text(errors="replace")[-4000:] for p in sorted((client.base_dir / "log").rglob("*.log")))


def wait_established(cl: ClusterLab, client: SoftEtherClient, *, not_on: str | None = None,
                     ping: PingStream | None = None, after: float = 0.0) -> dict[str, str]:
    """Wait until the account is established on a server other than `not_on`
    and, with `ping`, ANSWERS probes sent after `after` were answered."""
    deadline = time.monotonic() + RESUME_S
    status: dict[str, str] = {}
    while time.monotonic() < deadline:
        status = account_status(client, ACCOUNT)
        if ("Established" in status.get("Session Status", "") and status.get("Server Name") != not_on
                and (ping is None or ping.answered_after(after, ANSWERS))):
            return status
        time.sleep(0.2)
    raise AssertionError(f"the real client is not established on a server other than {not_on}: {status}\n"
                         f"client logs:\n{client_logs(client)}\n{cl.logs()}")


_STARTED = re.compile(r"^(\S+ \S+) INFO vpnd\.vpn: session (\S+) started: .*build (\d+)")
_DROPPED = re.compile(r"^(\S+ \S+) INFO vpnd\.session: session (\S+) \(.*\) closed: the client disconnected; 0 bytes in")


def sessions_dropped_at_once(members: list[Member]) -> list[str]:
    """Sessions of build BUGGY_BUILD on `members` that the client closed within
    1 s of their start with nothing sent: the stale OpenSSL error of the prose."""
    found = []
    for m in members:
        started: dict[str, datetime] = {}
        for line in m.node.log().splitlines():
            if (s := _STARTED.match(line)) and s.group(3) == BUGGY_BUILD:
                started[s.group(2)] = datetime.strptime(s.group(1), "%Y-%m-%d %H:%M:%S,%f")
            elif (d := _DROPPED.match(line)) and d.group(2) in started:
                if (datetime.strptime(d.group(1), "%Y-%m-%d %H:%M:%S,%f") - started[d.group(2)]).total_seconds() < 1:
                    found.append(f"{m.name} {d.group(2)}")
    return found


def run_takeover(lab: Lab, tmp_path, how: str) -> None:
    """Connect the real client through the controller, ping, do `how` to its
    member ("kill" or "freeze"), and wait for the pings to resume through another."""
    cl = ClusterLab(lab, tmp_path)
    cl.start()
    frozen: Member | None = None
    with SoftEtherLab(tmp_path / "softether") as se:   # its logs stay in pytest's tmp dir
        client = se.client(cl.ns_cli)
        client.must("NicCreate", NIC)
        client.must("AccountCreate", ACCOUNT, f"/SERVER:{CONTROLLER_IP}:{PORT}", f"/HUB:{HUB}",
                    f"/USERNAME:{USER}", f"/NICNAME:{NIC}")
        client.must("AccountPasswordSet", ACCOUNT, f"/PASSWORD:{USERS[USER]}", "/TYPE:standard")
        client.must("AccountRetrySet", ACCOUNT, "/NUM:999", "/INTERVAL:5")
        lab.addr(cl.ns_cli, f"vpn_{NIC}", f"{CLIENT_TAP_IP}/24")
        client.must("AccountConnect", ACCOUNT)
        status = wait_established(cl, client)
        assert status["Server Build"] and status["Server Product Name"], status
        first = cl.member_at(status["Server Name"])   # redirected: the controller keeps no session
        print(f"\nestablished on {first.name} ({status['Server Name']}) through the controller {CONTROLLER_IP}")

        ping = PingStream(lab, cl.ns_cli, LAN_HOST, tmp_path / f"ping-{how}.txt")
        try:
            wait_established(cl, client, ping=ping, after=ping.started)   # the LAN host answers
            at = time.time()
            if how == "kill":
                first.node.kill()
            elif how == "drain":
                rows = cl.controller.ok("EnumFarmMember")["FarmMemberList"]
                member_id = next(r["Id_u32"] for r in rows if r["Ip_ip"] == first.ip)
                cl.controller.vpnctl("ClusterMemberDrain", str(member_id), "/RATE:5")
            else:
                frozen = first
                first.node.signal(signal.SIGSTOP)
            try:
                status = wait_established(cl, client, not_on=first.ip, ping=ping, after=at)
            except AssertionError:
                others = [m for m in cl.members if m is not first]
                dropped = sessions_dropped_at_once(others)
                if how == "kill" and len(dropped) >= 2:
                    pytest.xfail(f"Debian softether-vpnclient 5.01 build {BUGGY_BUILD} (OpenSSL 3, no ERR_clear_error "
                                 f"in SecureRecv; fixed upstream in 5.02.5185, commit b2ec1bd5) drops every session "
                                 f"after the killed one ~0.1 s after our welcome: {', '.join(dropped)}")
                raise
        finally:
            if frozen is not None:
                frozen.node.signal(signal.SIGCONT)
            report = ping.stop()
        second = cl.member_at(status["Server Name"])
        if how == "drain":   # the controller placed it elsewhere, and lists the member drained
            listed = cl.controller.vpnctl("ClusterMemberList").stdout
            assert "drained" in listed, listed
        print(f"{how}: {first.name} -> {second.name}, longest ping gap {report.longest_gap_s:.2f} s "
              f"({report.answered} answers, {ping.lost()} lost)")
        assert second is not first
        client.cmd("AccountDisconnect", ACCOUNT)


def test_real_client_is_redirected_to_a_member_and_taken_over_after_a_kill(lab, tmp_path):
    run_takeover(lab, tmp_path, "kill")


def test_real_client_moves_off_a_drained_member_through_the_controller(lab, tmp_path):
    run_takeover(lab, tmp_path, "drain")


def test_real_client_is_taken_over_after_its_member_froze(lab, tmp_path):
    run_takeover(lab, tmp_path, "freeze")
