"""Our vpnclient against Debian's real SoftEther VPN Server 5.01.

- two userspace sessions of ours exchange ARP and ICMP echo through a real hub;
- the CLI reports a wrong password as ERR_AUTH_FAILED and exits 1;
- the CLI keeps a status file and stops cleanly on SIGTERM;
- a real cluster (controller with "controller functions only" + member)
  redirects our client to the member, which accepts its ticket and whose
  TLS certificate matches the redirect's `Cert`.

Needs root and the SoftEther packages (skipped otherwise). Servers run on
loopback in their own mount/UTS namespaces (tests/softether_lab.py) and are
stopped by PID at teardown.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.softether_lab import (
    SERVER_TYPE_CONTROLLER,
    SERVER_TYPE_MEMBER,
    SoftEtherServer,
    softether_lab,  # noqa: F401  (fixture)
    softether_server,  # noqa: F401  (fixture)
)
from tools.vpnclient import probe
from tools.vpnclient.client import UserspaceClient
from tools.vpnclient.retry import RetryPolicy

pytestmark = [pytest.mark.softether, pytest.mark.timeout(180)]
REPO = Path(__file__).resolve().parents[2]
RETRY = RetryPolicy(max_retries=20, base_s=0.2, cap_s=1.0)


def make_hub(srv: SoftEtherServer, hub: str, users: dict[str, str], hub_type: int = 0) -> None:
    srv.rpc("CreateHub", {"HubName_str": hub, "Online_bool": True, "HubType_u32": hub_type})
    for name, password in users.items():
        srv.rpc("CreateUser", {"HubName_str": hub, "Name_str": name, "AuthType_u32": 1,
                               "Auth_Password_str": password})


async def ping(a: UserspaceClient, a_ip: str, b_ip: str, count: int = 3) -> int:
    """The number of echo replies to `count` pings (after ARP)."""
    rtts = await probe.ping(a, a_ip, b_ip, count=count, timeout_s=5)
    return sum(r is not None for r in rtts)


def test_two_userspace_sessions_talk_through_a_real_hub(softether_server):
    srv = softether_server
    make_hub(srv, "lab", {"alice": "pw-a", "bob": "pw-b"})

    async def main():
        async with UserspaceClient(srv.address, "lab", "alice", "pw-a", retry=RETRY) as a, \
                UserspaceClient(srv.address, "lab", "bob", "pw-b", retry=RETRY, ip="10.71.0.2") as b:
            await a.wait_connected(20)
            await b.wait_connected(20)
            assert a.status.session_name.startswith("SID-ALICE-") and not a.status.redirected
            assert await ping(a, "10.71.0.1", "10.71.0.2") == 3
            assert b.port.responder.echo_replies == 3
            sessions = await asyncio.to_thread(srv.rpc, "EnumSession", {"HubName_str": "lab"})
            names = {s["Name_str"] for s in sessions["SessionList"]}
            assert {a.status.session_name, b.status.session_name} <= names

    asyncio.run(main())


def run_cli(srv: SoftEtherServer, tmp: Path, user: str, password: str, *extra: str, wait: bool = True):
    pw = tmp / f"{user}.pw"
    pw.write_text(password + "\n")
    cmd = [sys.executable, "-m", "tools.vpnclient.main", "connect", "--server", srv.address, "--hub", "lab",
           "--user", user, "--password-file", str(pw), "--userspace", "--max-retries", "2",
           "--retry-interval", "0.1", *extra]
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=60, stdin=subprocess.DEVNULL)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            stdin=subprocess.DEVNULL)


def test_cli_reports_a_wrong_password(softether_server, tmp_path):
    make_hub(softether_server, "lab", {"alice": "right"})
    res = run_cli(softether_server, tmp_path, "alice", "wrong")
    assert res.returncode == 1, res.stderr
    errors = [line for line in res.stderr.splitlines() if "ERR_" in line]
    assert len(errors) == 1 and "ERR_AUTH_FAILED" in errors[0], res.stderr
    assert "Traceback" not in res.stderr


def test_cli_status_file_and_sigterm(softether_server, tmp_path):
    srv = softether_server
    make_hub(srv, "lab", {"alice": "pw-a", "bob": "pw-b"})
    status = tmp_path / "status.json"
    proc = run_cli(srv, tmp_path, "bob", "pw-b", "--ip", "10.72.0.2/24", "--status-file", str(status), wait=False)
    try:
        doc = {}
        for _ in range(200):
            if status.exists():
                doc = json.loads(status.read_text())
                if doc["state"] == "connected":
                    break
            time.sleep(0.05)
        assert doc["state"] == "connected" and doc["server"] == srv.address, doc
        assert doc["session_name"].startswith("SID-BOB-") and doc["reconnects"] == 0

        async def main():  # the CLI's userspace host answers pings
            async with UserspaceClient(srv.address, "lab", "alice", "pw-a", retry=RETRY) as a:
                await a.wait_connected(20)
                return await ping(a, "10.72.0.1", "10.72.0.2", count=2)
        assert asyncio.run(main()) == 2
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        doc = json.loads(status.read_text())
        assert doc["state"] == "stopped" and doc["frames_in"] >= 3 and doc["frames_out"] >= 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait(fetch, done, attempts: int = 150):
    value = None
    for _ in range(attempts):
        value = fetch()
        if done(value):
            return value
        time.sleep(0.2)
    raise AssertionError(f"condition not reached; last value: {value!r}")


def real_cluster(selab, n_members: int) -> tuple[SoftEtherServer, list[SoftEtherServer]]:
    """A controller ("controller functions only") and members on loopback,
    joined, with static hub `lab` (users alice, bob) present on every member."""
    ctl = selab.server(f"ctl-{os.getpid()}", password="ctl-pw")
    ctl.rpc("SetFarmSetting", {"ServerType_u32": SERVER_TYPE_CONTROLLER, "Weight_u32": 100,
                               "ControllerOnly_bool": True})
    ctl.wait_admin(server_type=SERVER_TYPE_CONTROLLER)
    members = [selab.server(f"m{i}-{os.getpid()}") for i in range(n_members)]
    for member in members:
        member.rpc("SetFarmSetting", {
            "ServerType_u32": SERVER_TYPE_MEMBER, "ControllerName_str": "127.0.0.1", "ControllerPort_u32": ctl.port,
            "MemberPasswordPlaintext_str": "ctl-pw", "PublicIp_ip": "127.0.0.1", "Ports_u32": [member.port],
            "Weight_u32": 100})
    for member in members:
        member.wait_admin(server_type=SERVER_TYPE_MEMBER)
        _wait(lambda: member.rpc("GetFarmConnectionStatus"), lambda s: s["Online_bool"])
    make_hub(ctl, "lab", {"alice": "pw-a", "bob": "pw-b"}, hub_type=1)  # static
    for member in members:
        _wait(lambda: member.rpc("EnumHub")["HubList"], lambda hubs: any(h["HubName_str"] == "lab" for h in hubs))
    return ctl, members


def test_redirect_from_a_real_controller_to_a_real_member(softether_lab):
    ctl, (member,) = real_cluster(softether_lab, 1)

    async def main():
        async with UserspaceClient(ctl.address, "lab", "alice", "pw-a", retry=RETRY) as a, \
                UserspaceClient(ctl.address, "lab", "bob", "pw-b", retry=RETRY, ip="10.73.0.2") as b:
            await a.wait_connected(30)
            await b.wait_connected(30)
            for c in (a, b):
                assert c.status.redirected and c.status.server == member.address, c.status
                assert c.status.configured_server == ctl.address
            assert await ping(a, "10.73.0.1", "10.73.0.2", count=2) == 2
    asyncio.run(main())


def test_failover_to_another_real_member_through_the_controller(softether_lab):
    """Kill the member that holds the session: the client goes back to the
    controller, which redirects it to the surviving member."""
    ctl, members = real_cluster(softether_lab, 2)
    by_address = {m.address: m for m in members}

    async def main():
        async with UserspaceClient(ctl.address, "lab", "alice", "pw-a", retry=RETRY) as a:
            await a.wait_connected(30)
            first = a.status.server
            assert first in by_address and a.status.redirected
            await asyncio.to_thread(by_address[first].stop)
            for _ in range(600):  # bounded: ~60 s
                if a.status.reconnects >= 1 and a.status.state.value == "connected":
                    break
                await asyncio.sleep(0.1)
            assert a.status.state.value == "connected", a.status
            (survivor,) = set(by_address) - {first}
            assert a.status.server == survivor and a.status.redirected
            assert [h["event"] for h in a.status.history][:2] == ["connected", "lost"]
    asyncio.run(main())


def test_keepalives_hold_an_idle_session_past_the_server_timeout(softether_server):
    """Policy TimeOut 5 s (SoftEther's minimum): the welcome says T = 5000 ms,
    the server drops a silent session after T, our keep-alives (every
    T/5..T/2) keep it up through two timeouts' worth of idleness."""
    srv = softether_server
    make_hub(srv, "lab", {"bob": "pw-b"})
    srv.rpc("CreateUser", {"HubName_str": "lab", "Name_str": "idle", "AuthType_u32": 1,
                           "Auth_Password_str": "pw-i", "UsePolicy_bool": True,
                           "policy:Access_bool": True, "policy:TimeOut_u32": 5})

    async def main():
        async with UserspaceClient(srv.address, "lab", "idle", "pw-i", retry=RETRY) as a, \
                UserspaceClient(srv.address, "lab", "bob", "pw-b", retry=RETRY, ip="10.77.0.2") as b:
            conn = await a.wait_connected(20)
            await b.wait_connected(20)
            assert conn.welcome.timeout_ms == 5000
            for _ in range(120):  # ~12 s idle: the server's keep-alives reach us meanwhile
                await asyncio.sleep(0.1)
            assert a.status.reconnects == 0 and a.client.connection is conn
            assert conn.tunnel.keepalives_sent >= 2 and conn.tunnel.keepalives_received >= 1
            assert await ping(a, "10.77.0.1", "10.77.0.2", count=1) == 1
    asyncio.run(main())
