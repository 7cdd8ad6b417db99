"""Hub instances follow the config (create, offline, online, delete), sessions
register by name and leave with their table entries, local bridges that
cannot open stay Online/not Active and retry (logging once)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

import pytest

from node.dataplane.hubs import RunningHub, hosted_hubs, sync_instances
from node.dataplane.service import bridge_status, check_device_name, device_name
from node.dataplane.tap import DeviceError, FrameDevice
from node.state import model
from tests.unit.dataplane.fakes import (BCAST, FakeSession, ipv4_frame, mac, make_dataplane,
                                        make_server, running_dataplane)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


class FakeDevices:
    """open_tap/open_packet stand-ins: a datagram socketpair per device (one
    read = one frame); `gate` holds every open until set."""

    def __init__(self) -> None:
        self.opened: list[FrameDevice] = []
        self.attempts: list[str] = []
        self.error: Exception | None = None
        self.peers: list[socket.socket] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def open(self, name: str, **kwargs) -> FrameDevice:
        self.attempts.append(name)
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        ours.setblocking(False)
        self.peers.append(peer)
        device = FrameDevice(name, ours.detach(), False, os.close)
        self.opened.append(device)
        return device

    def close(self) -> None:
        for peer in self.peers:
            peer.close()


@pytest.fixture
def devices(monkeypatch):
    import node.dataplane.service as service
    fake = FakeDevices()
    monkeypatch.setattr(service, "open_packet", fake.open)
    monkeypatch.setattr(service, "open_tap", fake.open)
    yield fake
    fake.close()


async def _until(predicate, what: str) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_standalone_hosts_every_online_hub():
    config = model.Server(admin_password_hash=bytes(20), listeners=[],
                          hubs=[model.Hub("A"), model.Hub("B", online=False), model.Hub("C")])
    assert [h.name for h in hosted_hubs(config)] == ["A", "C"]


def test_sync_instances_creates_and_removes_by_lower_case_name():
    instances: dict[str, RunningHub] = {}
    created, removed = sync_instances(instances, [model.Hub("Sales")], RunningHub)
    assert list(instances) == ["sales"] and created[0].name == "Sales" and removed == []
    first = instances["sales"]
    created, removed = sync_instances(instances, [model.Hub("SALES"), model.Hub("x")], RunningHub)
    assert instances["sales"] is first and [i.name for i in created] == ["x"]
    created, removed = sync_instances(instances, [], RunningHub)
    assert created == [] and {i.name for i in removed} == {"Sales", "x"} and instances == {}


def test_sync_instances_restarts_an_instance_whose_hub_changed_type():
    instances: dict[str, RunningHub] = {}
    sync_instances(instances, [model.Hub("A", hub_type=model.HUB_STATIC), model.Hub("B", hub_type=model.HUB_STATIC)],
                   RunningHub)
    first_a, first_b = instances["a"], instances["b"]
    assert (first_a.hub_type, first_b.hub_type) == (model.HUB_STATIC, model.HUB_STATIC)
    created, removed = sync_instances(
        instances, [model.Hub("A", hub_type=model.HUB_DYNAMIC), model.Hub("B", hub_type=model.HUB_STATIC)], RunningHub)
    assert removed == [first_a] and created == [instances["a"]] and instances["a"] is not first_a
    assert instances["a"].hub_type == model.HUB_DYNAMIC and instances["b"] is first_b


def test_a_type_change_disconnects_the_hubs_sessions_and_keeps_it_running(tmp_path):
    """A member's pushed config (or a mode change) that changes a hub's type:
    the data plane restarts the hub, so its clients reconnect through the
    controller and land where the new type places them (SiCalledUpdateHub)."""
    server = make_server(tmp_path, hubs=[model.Hub("A"), model.Hub("B")])

    def standalone_to(hub_type: int):
        def apply(config):
            config.find_hub("A").hub_type = hub_type
        server.state.change(apply)

    async def main():
        async with running_dataplane(server):
            inst, other = server.hubs["a"], server.hubs["b"]
            session, bystander = FakeSession(inst, "alice"), FakeSession(other, "bob")
            inst.add_session(session)
            other.add_session(bystander)
            standalone_to(model.HUB_STATIC)   # hosted_hubs runs every online hub on a standalone server
            assert server.hubs["a"] is not inst and server.hubs["a"].hub_type == model.HUB_STATIC
            assert server.hubs["b"] is other
            await _until(lambda: bool(session.close_reasons), "the session to close")
            assert "type changed" in session.close_reasons[0] and inst.sessions == {}
            assert bystander.close_reasons == [] and other.sessions
            # the restarted hub goes on counting session names
            assert server.hubs["a"].next_session_name("eve") == "SID-EVE-2"

    run(main())


def test_session_names_count_per_hub_from_one():
    a, b = RunningHub("A"), RunningHub("B")
    assert a.next_session_name("alice") == "SID-ALICE-1"
    assert a.next_session_name("Bob") == "SID-BOB-2"
    assert b.next_session_name("alice") == "SID-ALICE-1"


def test_add_and_remove_session_with_its_table_entries():
    inst = RunningHub("HUB", clock=lambda: 100.0, wall_clock=lambda: 5000.0)
    alice, bob = FakeSession(inst, "alice"), FakeSession(inst, "bob")
    inst.add_session(alice)
    inst.add_session(bob)
    assert inst.sessions == {"SID-ALICE-1": alice, "SID-BOB-2": bob}
    assert inst.find_session("sid-alice-1") is alice and inst.find_session("nope") is None
    inst.hub.input(alice, [ipv4_frame(BCAST, mac(1), bytes((10, 0, 0, 1)), bytes((10, 0, 0, 2)))])
    inst.hub.input(bob, [ipv4_frame(mac(1), mac(2), bytes((10, 0, 0, 2)), bytes((10, 0, 0, 1)))])
    assert len(bob.received) == 1 and len(alice.received) == 1
    assert (inst.session_count(), inst.tcp_connection_count()) == (2, 4)
    assert (inst.mac_table_size(), inst.ip_table_size()) == (2, 2)
    before = inst.traffic()
    assert before["Recv.BroadcastCount"] == 1 and before["Recv.UnicastCount"] == 1

    inst.remove_session(alice)
    assert list(inst.sessions) == ["SID-BOB-2"]
    assert {e.session_name for e in inst.hub.mac_table()} == {"SID-BOB-2"}
    assert {e.session_name for e in inst.hub.ip_table()} == {"SID-BOB-2"}
    assert inst.traffic() == before          # a session leaving keeps the hub totals
    inst.remove_session(alice)               # idempotent
    assert inst.wall(99.0) == 4999.0


def test_add_session_refuses_duplicates_and_closed_instances():
    inst = RunningHub("HUB")
    alice = FakeSession(inst, "alice")
    inst.add_session(alice)
    with pytest.raises(ValueError):
        inst.add_session(alice)
    impostor = FakeSession(inst, "x")
    impostor.name, impostor.id = alice.name, alice.id
    with pytest.raises(ValueError):
        inst.add_session(impostor)
    inst.remove_session(impostor)            # its own close must not detach alice
    assert inst.hub.ports == [alice] and inst.sessions == {alice.name: alice}
    inst.close()
    assert inst.hub.ports == []
    with pytest.raises(RuntimeError):
        inst.add_session(FakeSession(inst, "bob"))


def test_instances_follow_config_changes_and_offline_disconnects(tmp_path):
    server = make_server(tmp_path, hubs=[model.Hub("DEFAULT"), model.Hub("Off", online=False)])
    dp = make_dataplane(server)

    def set_online(name: str, online: bool):
        def apply(config):
            config.find_hub(name).online = online
        server.state.change(apply)

    async def main():
        await dp.start()
        try:
            assert list(server.hubs) == ["default"]
            server.state.change(lambda c: c.hubs.append(model.Hub("New")))
            assert set(server.hubs) == {"default", "new"}
            inst = server.hubs["default"]
            s1, s2 = FakeSession(inst, "alice"), FakeSession(inst, "bob")
            inst.add_session(s1)
            inst.add_session(s2)
            assert server.session_count() == 2

            set_online("DEFAULT", False)
            assert "default" not in server.hubs
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert s1.close_reasons and s2.close_reasons and inst.sessions == {}
            set_online("Off", True)
            set_online("DEFAULT", True)
            assert set(server.hubs) == {"default", "new", "off"}
            assert server.hubs["default"] is not inst
            # the new instance goes on counting, as SoftEther's offline hub keeps its counter
            assert server.hubs["default"].next_session_name("eve") == "SID-EVE-3"

            live = server.hubs["new"]
            s3 = FakeSession(live, "carol")
            live.add_session(s3)
            server.state.change(lambda c: c.hubs.remove(c.find_hub("new")))
            assert "new" not in server.hubs
            await asyncio.sleep(0)
            assert s3.close_reasons
            s4 = FakeSession(server.hubs["off"], "dave")
            server.hubs["off"].add_session(s4)
        finally:
            await dp.stop()
        assert server.hubs == {} and s4.close_reasons == ["the VPN server is shutting down"]

    run(main())


def test_a_bridge_that_cannot_open_stays_online_inactive_and_retries(tmp_path, caplog, devices):
    devices.error = DeviceError(19, "no interface 'eth-missing'")
    bridge = model.Bridge(hub="DEFAULT", device="eth-missing", tap=False)
    server = make_server(tmp_path, hubs=[model.Hub("DEFAULT")], bridges=[bridge])

    async def main():
        async with running_dataplane(server, retry_interval_s=0.01):
            assert bridge_status(server, bridge) == (True, False)
            await _until(lambda: len(devices.attempts) >= 4, "four attempts")
            devices.error = None
            await _until(lambda: bridge_status(server, bridge) == (True, True), "the device to open")
            # the bridge session was named once, when placed, whatever the attempts
            assert server.hubs["default"].bridges["eth-missing"].name == "SID-LOCALBRIDGE-1"
            server.state.change(lambda c: setattr(c.find_hub("DEFAULT"), "online", False))
            assert bridge_status(server, bridge) == (False, False)

    with caplog.at_level(logging.INFO, logger="node.dataplane.service"):
        run(main())
    failures = [r for r in caplog.records if "cannot open" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in caplog.records]


def test_bridge_on_a_hub_that_does_not_run_is_offline(tmp_path):
    bridge = model.Bridge(hub="NOHUB", device="x", tap=True)
    server = make_server(tmp_path, bridges=[bridge])
    assert bridge_status(server, bridge) == (False, False)


def test_device_names():
    assert device_name("VPN", True) == "tap_vpn" and device_name("eth0", False) == "eth0"
    assert check_device_name(" eth0 ", False) == "eth0"
    assert check_device_name("abcdefghijk", True) == "abcdefghijk"          # tap_ + 11 = 15
    for bad, tap in [("abcdefghijkl", True), ("a/b", False), ("a b", False), ("", False),
                     ("x" * 16, False), ("bad.name", True), ("..", False)]:
        with pytest.raises(ValueError):
            check_device_name(bad, tap)


def test_bridge_opens_reopens_after_failure_and_closes_on_delete(tmp_path, devices):
    bridge = model.Bridge(hub="DEFAULT", device="veth0", tap=False)
    server = make_server(tmp_path, hubs=[model.Hub("DEFAULT")], bridges=[bridge])

    async def main():
        async with running_dataplane(server, retry_interval_s=0.01):
            inst = server.hubs["default"]
            assert bridge_status(server, bridge) == (True, True)
            session = inst.bridges["veth0"]
            first = session.port
            assert session.name == first.name == "SID-LOCALBRIDGE-1" and inst.hub.ports == [first]
            assert inst.session_count() == 1                    # a bridge session counts, as in SoftEther
            first._fail(OSError(100, "network is down"))        # the device broke under us
            await _until(lambda: session.port not in (None, first), "a reopened device")
            # the same bridge session, a new device
            assert devices.opened[0].fd == -1 and inst.bridges["veth0"] is session
            assert session.port.name == "SID-LOCALBRIDGE-1" and inst.hub.ports == [session.port]
            assert bridge_status(server, bridge) == (True, True)
            server.state.change(lambda c: c.bridges.clear())
            assert inst.bridges == {} and inst.hub.ports == [] and devices.opened[1].fd == -1
            assert inst.session_count() == 0

    run(main())


def test_an_open_in_flight_when_the_hub_stops_is_closed(tmp_path, devices):
    bridge = model.Bridge(hub="DEFAULT", device="vpn", tap=True)
    server = make_server(tmp_path, hubs=[model.Hub("DEFAULT")])

    async def main():
        async with running_dataplane(server, retry_interval_s=10):
            devices.gate.clear()
            server.state.change(lambda c: c.bridges.append(bridge))
            inst = server.hubs["default"]
            await asyncio.sleep(0.01)
            server.state.change(lambda c: setattr(c.find_hub("DEFAULT"), "online", False))
            devices.gate.set()
            await _until(lambda: devices.opened and devices.opened[0].fd == -1, "the device closed")
            assert inst.bridges == {} and bridge_status(server, bridge) == (False, False)

    run(main())


def test_refresh_follows_a_changed_placement_rule(tmp_path, monkeypatch):
    import node.dataplane.service as service
    server = make_server(tmp_path, hubs=[model.Hub("A"), model.Hub("B")])

    async def main():
        async with running_dataplane(server) as dp:
            assert set(server.hubs) == {"a", "b"}
            monkeypatch.setattr(service, "hosted_hubs", lambda config, dynamic=(): config.hubs[:1])
            dp.refresh()
            assert set(server.hubs) == {"a"}

    run(main())


def test_cluster_modes_host_static_hubs_and_placed_dynamic_ones():
    config = model.Server(admin_password_hash=b"\x01" * 20, listeners=[])
    config.farm.server_type = model.SERVER_MEMBER
    config.hubs = [model.Hub("S", hub_type=model.HUB_STATIC), model.Hub("D", hub_type=model.HUB_DYNAMIC),
                   model.Hub("E", hub_type=model.HUB_DYNAMIC), model.Hub("Off", hub_type=model.HUB_STATIC,
                                                                           online=False)]
    assert [h.name for h in hosted_hubs(config)] == ["S"]
    assert [h.name for h in hosted_hubs(config, {"d"})] == ["S", "D"]
