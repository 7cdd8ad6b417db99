"""vpnclient against our own vpnd on loopback: two userspace sessions ping
each other through vpnd's hub, and a wrong password ends the client with
ERR_AUTH_FAILED. (The TAP version is tests/netns/test_vpnclient_tap.py.)"""

from __future__ import annotations

import asyncio

import pytest

from node.softether.errors import Err
from tools.vpnclient.gaps import ping_stream
from tools.vpnclient.probe import arp_resolve, ping
from tools.vpnclient.client import EXIT_REFUSED, ClientFailed, UserspaceClient
from tools.vpnclient.retry import RetryPolicy

pytestmark = pytest.mark.timeout(60)
RETRY = RetryPolicy(max_retries=5, base_s=0.1, cap_s=0.5)


@pytest.fixture
def hub(vpnd):
    assert "result" in vpnd.call("CreateHub", {"HubName_str": "lab", "Online_bool": True})
    for user in ("alice", "bob"):
        assert "result" in vpnd.call("CreateUser", {"HubName_str": "lab", "Name_str": user, "AuthType_u32": 1,
                                                    "Auth_Password_str": "pw-" + user})
    return f"127.0.0.1:{vpnd.port}"


def test_two_userspace_sessions_ping_through_our_hub(hub, vpnd):
    async def main():
        async with UserspaceClient(hub, "lab", "alice", "pw-alice", retry=RETRY) as a, \
                UserspaceClient(hub, "lab", "bob", "pw-bob", retry=RETRY, ip="10.74.0.2") as b:
            await a.wait_connected(10)
            await b.wait_connected(10)
            assert a.status.session_name.startswith("SID-ALICE-")
            rtts = await ping(a, "10.74.0.1", "10.74.0.2", count=3, timeout_s=5)
            assert all(r is not None for r in rtts) and b.port.responder.echo_replies == 3
            listed = await asyncio.to_thread(vpnd.call, "EnumSession", {"HubName_str": "lab"})
            names = {s["Name_str"] for s in listed["result"]["SessionList"]}
            assert {a.status.session_name, b.status.session_name} <= names
    asyncio.run(main())


def test_wrong_password_is_err_auth_failed(hub):
    async def main():
        c = UserspaceClient(hub, "lab", "alice", "wrong", retry=RETRY)
        with pytest.raises(ClientFailed):
            await c.wait_connected(10)
        assert c.exit_code == EXIT_REFUSED and c.status.last_error_code == Err.AUTH_FAILED
    asyncio.run(main())


async def until(cond, what: str, timeout_s: float = 20.0) -> None:
    """Wait for `cond()` every 10 ms; the deadline is generous (busy machines)."""
    for _ in range(int(timeout_s / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def answers_on_session(client: UserspaceClient) -> int:
    """Frames the client's current session has received (the ping answers)."""
    conn = client.client.connection
    return 0 if conn is None else conn.tunnel.recv_frames


def test_a_deleted_session_reconnects_and_the_gap_is_measured(hub, vpnd):
    """The admin deletes alice's session while a ping stream runs: the client
    reconnects by itself and the stream shows one outage, then answers again."""
    async def main():
        async with UserspaceClient(hub, "lab", "alice", "pw-alice", retry=RETRY) as a, \
                UserspaceClient(hub, "lab", "bob", "pw-bob", retry=RETRY, ip="10.74.0.2") as b:
            await a.wait_connected(10)
            await b.wait_connected(10)
            b_mac = await arp_resolve(a, "10.74.0.1", "10.74.0.2", timeout_s=5)
            assert b_mac == b.mac
            stop = asyncio.Event()
            stream = asyncio.ensure_future(ping_stream(a, "10.74.0.1", "10.74.0.2", b_mac, interval_s=0.02,
                                                       duration_s=30, stop=stop))
            await until(lambda: answers_on_session(a) >= 3, "answers before the delete")
            first = a.status.session_name
            doc = await asyncio.to_thread(vpnd.call, "DeleteSession", {"HubName_str": "lab", "Name_str": first})
            assert "result" in doc, doc
            await until(lambda: a.status.reconnects == 1 and a.status.state.value == "connected", "reconnected")
            await until(lambda: answers_on_session(a) >= 3, "answers on the new session")
            stop.set()
            report = await stream
            assert a.status.reconnects == 1 and a.status.session_name != first
            # a gap ends with an answered probe: the path came back after the reconnect
            assert report.gaps and report.longest_gap_s > 0 and report.lost > 0
            print(f"outage {report.longest_gap_s:.3f} s, {report.lost}/{report.sent} probes lost")
    asyncio.run(main())
