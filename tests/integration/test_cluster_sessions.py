"""Collective administration on a real cluster on loopback (CLUSTERING.md
§3.9.10): a controller and two member vpnd processes, each named with
VPNCLUSTER_HOSTNAME; userspace VPN sessions log in as the hub
administrator straight to each server (§3.9.9); the controller's
SessionList/SessionGet/SessionDisconnect cover every server, and a frozen
member (SIGSTOP) is named, not waited for.

The liveness timeout is raised to 20 s so a member frozen for a few
seconds stays listed (and is therefore asked and found missing) instead of
being evicted. Times measured are printed, never asserted (bench/collective.py
reports them).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from contextlib import AsyncExitStack

import pytest

from tests.integration.test_cluster import listed, make_member, ok, start_all, wait_for
from tests.cluster_fakes import discover
from tests.vpnd_proc import Vpnd
from tools.vpnclient.client import UserspaceClient
from tools.vpnclient.retry import RetryPolicy

pytestmark = pytest.mark.timeout(240)

HUB, HUB_PW = "CL", "hub-admin-pw"
NAMES = ("ctl-host", "member-a", "member-b")
NO_RETRY = RetryPolicy(max_retries=0)
"""Give up after a failed login (a session ended by the administrator still logs in again)."""


def _env(hostname: str) -> dict[str, str]:
    return {**os.environ, "VPNCLUSTER_HOSTNAME": hostname, "VPNCLUSTER_LIVENESS_S": "20"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("collective")
    nodes = [Vpnd(base / name) for name in NAMES]
    for node, name in zip(nodes, NAMES):
        node.env = _env(name)
    ctl, members = nodes[0], nodes[1:]
    try:
        start_all(nodes)
        ok(ctl.vpnctl("ClusterSettingController"))
        wait_for(lambda: discover(ctl.port).get("bus_port"), "controller bus up")
        for m in members:
            make_member(ctl, m)
        wait_for(lambda: len(listed(ctl)) == 2, "two members joined")
        ok(ctl.vpnctl("HubCreateStatic", HUB, f"/PASSWORD:{HUB_PW}"))
        for m in members:  # the pushed hub runs on each member
            wait_for(lambda: "result" in m.call("EnumSession", {"HubName_str": HUB}), f"{m.name} has {HUB}")
        yield ctl, members
    finally:
        for n in nodes:
            if n.proc and n.proc.poll() is None:
                os.kill(n.proc.pid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            n.stop()


async def _sessions(stack: AsyncExitStack, node: Vpnd, count: int) -> list[UserspaceClient]:
    """`count` hub-administrator sessions straight to `node`; closed with the stack."""
    clients = []
    for _ in range(count):
        c = await stack.enter_async_context(
            UserspaceClient(f"127.0.0.1:{node.port}", HUB, "administrator", HUB_PW, retry=NO_RETRY))
        await c.wait_connected(20)
        clients.append(c)
    return clients


def _session_list(ctl: Vpnd) -> dict:
    return json.loads(ok(ctl.vpnctl("SessionList", hub=HUB, json_out=True)))


def _where(doc: dict) -> dict[str, set[tuple[str, bool]]]:
    """Server host name → {(session name, RemoteSession)}."""
    out: dict[str, set[tuple[str, bool]]] = {}
    for row in doc["SessionList"]:
        out.setdefault(row["RemoteHostname_str"], set()).add((row["Name_str"], row["RemoteSession_bool"]))
    return out


def test_controller_lists_gets_and_disconnects_every_servers_sessions(cluster):
    ctl, (ma, mb) = cluster

    async def body() -> None:
        async with AsyncExitStack() as stack:
            on_ctl = await _sessions(stack, ctl, 1)
            on_a = await _sessions(stack, ma, 1)
            on_b = await _sessions(stack, mb, 2)
            names = {n: {c.status.session_name for c in cs}
                     for n, cs in zip(NAMES, (on_ctl, on_a, on_b))}
            where = _where(await asyncio.to_thread(_session_list, ctl))
            assert {s for s, _ in where["ctl-host"]} >= names["ctl-host"]
            assert {s for s, _ in where["member-a"]} >= names["member-a"]
            assert {s for s, _ in where["member-b"]} >= names["member-b"]
            assert {remote for s, remote in where["ctl-host"]} == {False}
            assert {remote for s, remote in where["member-a"] | where["member-b"]} == {True}
            table = ok(await asyncio.to_thread(ctl.vpnctl, "SessionList", hub=HUB))
            assert "On 'member-a'" in table and "On 'member-b'" in table and "On 'ctl-host'" in table
            # A name only member-b has (each server numbers its own sessions).
            target = next(c for c in on_b if c.status.session_name not in names["member-a"] | names["ctl-host"])
            name = target.status.session_name
            got = json.loads(ok(await asyncio.to_thread(ctl.vpnctl, "SessionGet", name, hub=HUB, json_out=True)))
            assert got["Name_str"] == name and got["ServerHostname_str"] == "member-b"
            ok(await asyncio.to_thread(ctl.vpnctl, "SessionDisconnect", name, hub=HUB))
            # the session ends (the client then logs in again as a new session)
            deadline = time.monotonic() + 20
            while target.status.session_name == name and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert target.status.session_name != name, "the disconnected session is still up"
            left = _where(await asyncio.to_thread(_session_list, ctl))
            assert name not in {s for s, _ in left.get("member-b", set())}
            others = [c for c in [*on_ctl, *on_a, *on_b] if c is not target]
            assert all(c.status.session_name for c in others), "another session was disconnected"

    asyncio.run(body())


def test_a_frozen_member_is_named_and_the_others_still_listed(cluster):
    ctl, (ma, mb) = cluster

    async def body() -> None:
        async with AsyncExitStack() as stack:
            on_b = await _sessions(stack, mb, 1)
            on_a = await _sessions(stack, ma, 1)
            assert ma.proc is not None
            os.kill(ma.proc.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                doc = await asyncio.to_thread(ctl.call, "EnumSession", {"HubName_str": HUB})
                elapsed = time.monotonic() - started
                table = ok(await asyncio.to_thread(ctl.vpnctl, "SessionList", hub=HUB))
            finally:
                os.kill(ma.proc.pid, signal.SIGCONT)
            print(f"EnumSession with member-a frozen: {elapsed * 1000:.0f} ms")
            result = doc["result"]
            where = _where(result)
            assert on_b[0].status.session_name in {s for s, _ in where["member-b"]}
            assert "member-a" not in where
            assert [m["Hostname"] for m in result["MissingServers"]] == ["member-a"]
            assert "Warning: cluster member member-a" in table
            # thawed, it answers again
            where = _where(await asyncio.to_thread(_session_list, ctl))
            assert on_a[0].status.session_name in {s for s, _ in where["member-a"]}

    asyncio.run(body())
