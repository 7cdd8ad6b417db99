"""Clustered VPN sessions on a real loopback cluster (controller + 2 member
vpnd processes): logins to the controller are authenticated there and
redirected with a one-time ticket to the member chosen by points; a dynamic
hub runs on one member; a member that dies is taken over; tickets cannot be
replayed; an ordinary user may not log in straight to a member, a hub
administrator may.

Userspace clients (tools/vpnclient) stand for VPN clients. Waits are
conditions with generous deadlines; no wall-clock figure is asserted
(bench/connect.py and bench/failover.py measure them).
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.softether.errors import Err
from node.softether.handshake import ServerError
from tools.vpnclient.client import ClientFailed, UserspaceClient
from tools.vpnclient.connection import connect
from tools.vpnclient.login import PasswordLogin, Redirected, TicketLogin, Welcomed
from tools.vpnclient.probe import ping
from tools.vpnclient.retry import RetryPolicy
from tools.vpnctl.client import AdminError
from tools.vpndrill.cluster import LocalCluster, Node, wait_until

pytestmark = pytest.mark.timeout(180)
RETRY = RetryPolicy(max_retries=20, base_s=0.1, cap_s=0.5)
HUB, DYN = "vpn", "dept"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path, members=2, liveness_s=2.0) as c:
        c.start()
        ctl = c.controller.client()
        # Controller functions only: every session goes to a member.
        ctl.call("SetFarmSetting", {"ServerType_u32": 1, "Weight_u32": 100, "ControllerOnly_bool": True})
        wait_until(lambda: members_listed(c), "members back after the re-set", 30)
        ctl.call("CreateHub", {"HubName_str": HUB, "Online_bool": True, "HubType_u32": 1,
                               "AdminPasswordPlainText_str": "hubadmin"})
        ctl.call("CreateHub", {"HubName_str": DYN, "Online_bool": True, "HubType_u32": 2,
                               "AdminPasswordPlainText_str": "hubadmin"})
        for hub in (HUB, DYN):
            for user in ("alice", "bob", "carol", "dave"):
                ctl.call("CreateUser", {"HubName_str": hub, "Name_str": user, "AuthType_u32": 1,
                                        "Auth_Password_str": "pw-" + user})
        # Every member runs the static hub (pushed) before a client comes; the
        # dynamic one exists only where a login places it (HubList shows so).
        for m in c.members:
            wait_until(lambda m=m: HUB in hubs_of(m), f"hub pushed to {m.name}", 30)
            assert DYN not in hubs_of(m)
        ctl.close()
        yield c


def hubs_of(node: Node) -> set[str]:
    with node.client() as nc:
        return {h["HubName_str"] for h in nc.call("EnumHub")["HubList"]}


def members_listed(c: LocalCluster) -> bool:
    try:
        return {m.port for m in c.members} <= c.listed_ports()
    except AdminError:  # the role is restarting (46) for a moment
        return False


def port_of(client: UserspaceClient) -> int:
    assert client.status.server is not None
    return int(client.status.server.rsplit(":", 1)[1])


def controller_address(c: LocalCluster) -> str:
    return f"127.0.0.1:{c.controller.port}"


def sessions_on(c: LocalCluster, node_port: int, hub: str) -> set[str]:
    node = next(n for n in c.nodes if n.port == node_port)
    with node.client() as nc:
        return {s["Name_str"] for s in nc.call("EnumSession", {"HubName_str": hub})["SessionList"]}


def test_logins_are_redirected_to_members_and_spread_by_points(cluster):
    async def main():
        users = ("alice", "bob", "carol", "dave")
        clients = [UserspaceClient(controller_address(cluster), HUB, u, "pw-" + u, retry=RETRY) for u in users]
        for c in clients:
            c.start()
        try:
            for c in clients:
                await c.wait_connected(20)
            member_ports = {m.port for m in cluster.members}
            landed = Counter(port_of(c) for c in clients)
            assert set(landed) <= member_ports and all(c.status.redirected for c in clients)
            assert sorted(landed.values()) == [2, 2], landed  # equal weights, fresh load: one each in turn
            for c in clients:
                names = await asyncio.to_thread(sessions_on, cluster, port_of(c), HUB)
                assert c.status.session_name in names
        finally:
            for c in clients:
                await c.stop()
    asyncio.run(main())


def pair_on_dynamic_hub(cluster: LocalCluster, net: str) -> tuple[UserspaceClient, UserspaceClient]:
    """alice (<net>.1) and bob (<net>.2) on the dynamic hub, through the controller."""
    return (UserspaceClient(controller_address(cluster), DYN, "alice", "pw-alice", retry=RETRY, ip=f"{net}.1"),
            UserspaceClient(controller_address(cluster), DYN, "bob", "pw-bob", retry=RETRY, ip=f"{net}.2"))


async def pings_through(a: UserspaceClient, b: UserspaceClient) -> None:
    assert a.ip is not None and b.ip is not None
    rtts = await ping(a, a.ip, b.ip, count=3, timeout_s=5)
    assert all(r is not None for r in rtts)


def test_dynamic_hub_runs_on_one_member_and_its_sessions_talk(cluster):
    async def main():
        a, b = pair_on_dynamic_hub(cluster, "10.80.0")
        async with a, b:
            await a.wait_connected(20)
            await b.wait_connected(20)
            assert port_of(a) == port_of(b) != cluster.controller.port
            await pings_through(a, b)
    asyncio.run(main())


def test_sessions_of_a_killed_member_come_back_on_the_other(cluster):
    async def main():
        a, b = pair_on_dynamic_hub(cluster, "10.81.0")
        async with a, b:
            await a.wait_connected(20)
            await b.wait_connected(20)
            first = port_of(a)
            victim = next(m for m in cluster.members if m.port == first)
            victim.kill()
            for c in (a, b):
                await wait_async(lambda c=c: c.status.state.value == "connected" and port_of(c) != first,
                                 "reconnected on the other member", 30)
            assert port_of(a) == port_of(b)  # the dynamic hub was placed again, on one member
            await pings_through(a, b)
    asyncio.run(main())


async def wait_async(cond, what: str, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.05)


def test_an_ordinary_user_straight_to_a_member_is_refused_a_hub_admin_is_let_in(cluster):
    async def main():
        member = f"127.0.0.1:{cluster.members[0].port}"
        user = UserspaceClient(member, HUB, "alice", "pw-alice", retry=RetryPolicy(max_retries=0))
        with pytest.raises(ClientFailed):
            await user.wait_connected(15)
        assert user.status.last_error_code == Err.ACCESS_DENIED
        async with UserspaceClient(member, HUB, "administrator", "hubadmin", retry=RETRY) as admin:
            await admin.wait_connected(20)
            assert port_of(admin) == cluster.members[0].port and not admin.status.redirected
    asyncio.run(main())


def test_a_frozen_member_is_skipped_for_new_logins(cluster):
    async def main():
        frozen = cluster.members[0]
        frozen.signal(signal.SIGSTOP)
        try:
            clients = [UserspaceClient(controller_address(cluster), HUB, u, "pw-" + u, retry=RETRY)
                       for u in ("alice", "bob", "carol")]
            for c in clients:
                c.start()
            try:
                for c in clients:
                    await c.wait_connected(30)
                assert {port_of(c) for c in clients} == {cluster.members[1].port}
            finally:
                for c in clients:
                    await c.stop()
        finally:
            frozen.signal(signal.SIGCONT)
    asyncio.run(main())


def test_a_ticket_is_single_use_and_bound_to_its_hub(cluster):
    with cluster.controller.client() as ctl:
        ctl.call("CreateHub", {"HubName_str": "other", "Online_bool": True, "HubType_u32": 1})
    for m in cluster.members:
        wait_until(lambda m=m: "other" in hubs_of(m), f"hub pushed to {m.name}", 30)

    async def main():
        event, _ = await connect("127.0.0.1", cluster.controller.port, hub=HUB, username="alice",
                                 credentials=PasswordLogin.from_plain("alice", "pw-alice"))
        assert isinstance(event, Redirected)
        to = event.redirect
        member_port = to.choose_port(cluster.controller.port)
        assert member_port in {m.port for m in cluster.members}
        ticket = TicketLogin(ticket=to.ticket)
        # Another hub first: refused, and the ticket is not used up by it.
        with pytest.raises(ServerError) as refused:
            await connect(str(to.ip), member_port, hub="other", username="alice", credentials=ticket)
        assert refused.value.code == Err.AUTH_FAILED
        event, conn = await connect(str(to.ip), member_port, hub=HUB, username="alice", credentials=ticket,
                                    expected_cert=to.cert)
        assert isinstance(event, Welcomed) and conn is not None
        try:
            with pytest.raises(ServerError) as replayed:
                await connect(str(to.ip), member_port, hub=HUB, username="alice", credentials=ticket)
            assert replayed.value.code == Err.AUTH_FAILED
        finally:
            conn.close()
    asyncio.run(main())
