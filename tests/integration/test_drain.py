"""Graceful drain on a real loopback cluster (controller "controller
functions only" + 2 member vpnd processes) with userspace clients
(tools/vpnclient): ClusterMemberDrain moves every session of a member to
the other one, each client reconnecting through the controller, while the
member list shows the member draining then drained, also after a restart
of the controller; ClusterMemberUndrain lets it take sessions again; and a rolling restart of every member through
drain (drain, drained, restart, undrain, next) loses no session, counted
through the controller's collective EnumSession.

Waits are conditions with generous deadlines; no wall-clock figure is
asserted (bench/failover.py --faults drain,kill compares the gaps).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.vpnclient.client import UserspaceClient
from tools.vpnclient.retry import RetryPolicy, State
from tools.vpnctl.client import AdminError
from tools.vpndrill.cluster import LocalCluster, Node, wait_until

pytestmark = pytest.mark.timeout(180)
RETRY = RetryPolicy(max_retries=20, base_s=0.1, cap_s=0.5)
HUB = "vpn"
USERS = [f"user{i}" for i in range(6)]
RATE = 4  # sessions per second: slow enough that the member is seen draining


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path, members=2, liveness_s=2.0, controller_only=True) as c:
        c.start()
        with c.controller.client() as ctl:
            ctl.call("CreateHub", {"HubName_str": HUB, "Online_bool": True, "HubType_u32": 1})
            for user in USERS:
                ctl.call("CreateUser", {"HubName_str": HUB, "Name_str": user, "AuthType_u32": 1,
                                        "Auth_Password_str": "pw-" + user})
        for m in c.members:
            wait_until(lambda m=m: has_hub(m), f"hub pushed to {m.name}", 30)
        yield c


def has_hub(node: Node) -> bool:
    with node.client() as nc:
        return any(h["HubName_str"] == HUB for h in nc.call("EnumHub")["HubList"])


def member_row(c: LocalCluster, node: Node) -> dict | None:
    """The controller's EnumFarmMember row of `node` (None while it is not listed)."""
    try:
        rows = c.member_rows()
    except AdminError:
        return None
    for row in rows:
        with c.controller.client() as ctl:
            try:
                if ctl.call("GetFarmInfo", {"Id_u32": row["Id_u32"]})["Ports_u32"] == [node.port]:
                    return row
            except AdminError:
                continue
    return None


def drain_state(c: LocalCluster, node: Node) -> str | None:
    row = member_row(c, node)
    return None if row is None else row["DrainState_str"]


def port_of(client: UserspaceClient) -> int:
    assert client.status.server is not None
    return int(client.status.server.rsplit(":", 1)[1])


def collective_sessions(c: LocalCluster) -> int:
    """Sessions of the hub in the whole cluster, as the controller's EnumSession gathers them."""
    with c.controller.client() as ctl:
        return len(ctl.call("EnumSession", {"HubName_str": HUB})["SessionList"])


def call(c: LocalCluster, method: str, node: Node, **params: int) -> dict:
    row = member_row(c, node)
    assert row is not None, f"{node.name} not listed"
    with c.controller.client() as ctl:
        return ctl.call(method, {"Id_u32": row["Id_u32"], **{f"{k}_u32": v for k, v in params.items()}})


async def until(cond, what: str, timeout_s: float, step_s: float = 0.05) -> None:
    """Wait for `cond` (run in a thread: it may make admin calls) without blocking the clients."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await asyncio.to_thread(cond):
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(step_s)


def all_connected(clients: list[UserspaceClient]) -> bool:
    return all(cl.status.state is State.CONNECTED for cl in clients)


async def start_clients(c: LocalCluster) -> list[UserspaceClient]:
    clients = [UserspaceClient(f"127.0.0.1:{c.controller.port}", HUB, u, "pw-" + u, retry=RETRY) for u in USERS]
    for cl in clients:
        cl.start()
    for cl in clients:
        await cl.wait_connected(30)
    return clients


def test_drain_moves_every_session_away_at_the_rate_and_undrain_takes_sessions_again(cluster):
    async def main():
        clients = await start_clients(cluster)
        try:
            victim, other = cluster.members
            on_victim = [cl for cl in clients if port_of(cl) == victim.port]
            assert on_victim, "points spread the logins over both members"
            seen: set[str | None] = set()

            def drained() -> bool:
                seen.add(drain_state(cluster, victim))
                return "drained" in seen and all_connected(clients)
            res = await asyncio.to_thread(call, cluster, "ClusterMemberDrain", victim, Rate=RATE)
            assert res["DrainState_str"] == "draining" and res["DrainRate_u32"] == RATE
            await until(drained, "victim drained and every client back", 60)
            assert "draining" in seen  # listed draining on the way
            assert all(port_of(cl) == other.port for cl in clients)
            assert all(cl.status.reconnects == 1 for cl in on_victim)  # moved once, through the controller
            assert all(cl.status.reconnects == 0 for cl in clients if cl not in on_victim)
            assert await asyncio.to_thread(collective_sessions, cluster) == len(USERS)
            info = await asyncio.to_thread(call, cluster, "GetFarmInfo", victim)
            assert info["DrainState_str"] == "drained" and info["DrainMoved_u32"] == len(on_victim)
            assert info["NumSessions_u32"] == 0
            # No new session on a drained member.
            async with UserspaceClient(f"127.0.0.1:{cluster.controller.port}", HUB, "user0", "pw-user0",
                                       retry=RETRY) as extra:
                await extra.wait_connected(30)
                assert port_of(extra) == other.port
            # The order is configuration: a controller restart keeps it.
            await asyncio.to_thread(cluster.controller.stop)
            await asyncio.to_thread(cluster.controller.start)
            await until(lambda: drain_state(cluster, victim) == "drained", "drained after a controller restart", 60)
            res = await asyncio.to_thread(call, cluster, "ClusterMemberUndrain", victim)
            assert res["DrainState_str"] == ""
            assert await asyncio.to_thread(drain_state, cluster, victim) == ""
            # Undrained and empty: the next login lands there.
            async with UserspaceClient(f"127.0.0.1:{cluster.controller.port}", HUB, "user1", "pw-user1",
                                       retry=RETRY) as back:
                await back.wait_connected(30)
                assert port_of(back) == victim.port
        finally:
            for cl in clients:
                await cl.stop()
    asyncio.run(main())


def test_a_rolling_restart_through_drain_loses_no_session(cluster):
    async def main():
        clients = await start_clients(cluster)
        try:
            for node in cluster.members:
                await asyncio.to_thread(call, cluster, "ClusterMemberDrain", node, Rate=20)
                await until(lambda: drain_state(cluster, node) == "drained" and all_connected(clients),
                            f"{node.name} drained", 60)
                assert all(port_of(cl) != node.port for cl in clients)
                await asyncio.to_thread(node.stop)
                await asyncio.to_thread(node.start)
                # Back with its saved state and the same bus key: still drained until undrained.
                await until(lambda: drain_state(cluster, node) == "drained", f"{node.name} rejoined drained", 60)
                await asyncio.to_thread(call, cluster, "ClusterMemberUndrain", node)
                await until(lambda: collective_sessions(cluster) == len(USERS), "every session listed", 30)
            assert all_connected(clients)
            assert all(cl.status.state is State.CONNECTED for cl in clients)
            assert await asyncio.to_thread(collective_sessions, cluster) == len(USERS)
            # Nobody gave up or was refused on the way: each moved at most once per member restart.
            assert all(cl.status.reconnects <= len(cluster.members) for cl in clients)
        finally:
            for cl in clients:
                await cl.stop()
    asyncio.run(main())
