"""The member role's asyncio edge against an in-test controller on loopback
(tests/unit/cluster/fake_controller.py): discovery, pinning, join, the
controller's messages, silence and rejoin, leave."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Awaitable, Callable

import pytest

from controller.messages import (
    Ack, ChunkAck, ConfigAck, ConfigDelta, CreateHubInstance, DeleteHubInstance, HubChange, HubConfig, Rejoin,
    StatusPoll, StatusReport,
)
import node.admin.methods_farm_member  # noqa: F401  (registers GetFarmConnectionStatus)
import node.admin.methods_user  # noqa: F401  (registers GetUser)
from node.admin.dispatch import AdminContext, dispatch
from node.admin.jsonrpc import RpcError
from node.cluster.controller_bus import hub_configs
from node.cluster.member_link import LinkState
from node.cluster.member_role import MemberRole
from node.server import VpnServer
from node.softether.errors import Err
from node.softether.sha0 import hash_admin_password
from node.state import model
from node.state.node_state import NodeState
from tests.cluster_fakes import until
from tests.unit.cluster.fake_controller import HUBS, MEMBER_ID, FakeController
from vpnbus import keys
from vpnbus.endpoint import RemoteError

pytestmark = pytest.mark.timeout(60)

PASSWORD_HASH = hash_admin_password("controller-pw")
FAST = dict(retry_interval_s=0.3, jitter_s=0.05, liveness_timeout_s=1.0, request_timeout_s=2.0,
            discovery_timeout_s=2.0)


class FakeDataPlane:
    def __init__(self) -> None:
        self.refreshed = 0

    def refresh(self) -> None:
        self.refreshed += 1


def make_server(state_dir: Path, controller_port: int, password_hash: bytes = PASSWORD_HASH,
                public_ip: str = "") -> VpnServer:
    state_dir.mkdir(parents=True, exist_ok=True)
    farm = model.Farm(server_type=model.SERVER_MEMBER, weight=200, controller_host="127.0.0.1",
                      controller_port=controller_port, member_password_hash=password_hash,
                      public_ip=public_ip, public_ports=[443, 5555])
    config = model.Server(admin_password_hash=hash_admin_password("member-pw"), listeners=[], farm=farm)
    server = VpnServer(state=NodeState.create(state_dir, config), state_dir=state_dir, cert_der=b"DER")
    server.dataplane = FakeDataPlane()  # type: ignore[attr-defined]
    server.dynamic_instances.watch(server.dataplane.refresh)
    return server


def run(tmp_path: Path, body: Callable[[FakeController, VpnServer, MemberRole], Awaitable[None]], *,
        member_hash: bytes = PASSWORD_HASH, public_ip: str = "", **role_kwargs) -> None:
    async def main() -> None:
        ctl = await FakeController(tmp_path / "ctl", PASSWORD_HASH, silence_timeout_s=1.0).start()
        server = make_server(tmp_path / "member", ctl.http_port, member_hash, public_ip)
        role = MemberRole(server, **{**FAST, **role_kwargs})
        server.cluster._role = role  # as ClusterRoles.switch installs a started role
        try:
            await body(ctl, server, role)
        finally:
            await role.stop()
            await ctl.stop()
    asyncio.run(main())


def online(role: MemberRole) -> Callable[[], bool]:
    return lambda: role.status().link.online


def test_joins_pins_and_applies_the_push(tmp_path):
    async def body(ctl, server, role):
        await role.start()
        await until(online(role))
        await until(lambda: server.state.config.hubs != [])
        status = role.status()
        assert (status.link.num_try, status.link.num_connected, status.link.num_failed) == (1, 1, 0)
        assert status.link.member_id == MEMBER_ID
        assert (status.controller_ip, status.controller_port) == ("127.0.0.1", ctl.http_port)
        assert status.first_connected_time == status.current_connected_time > 0
        assert keys.load_pinned(server.state_dir / "bus", "controller") == ctl.keys.public
        peer, hello = ctl.hellos[0]
        assert peer == keys.load(server.state_dir / "bus", "node").public
        assert hello.public_ip == "127.0.0.1"   # local address towards the controller
        assert hello.public_ports == [443, 5555]
        assert (hello.weight, hello.max_sessions, hello.server_cert) == (200, 100_000, b"DER")
        hub = server.state.config.find_hub("hub1")
        assert hub is not None and hub.hub_type == model.HUB_STATIC
        assert hub.find_user("ALICE").hashed_key == b"\x03" * 20
    run(tmp_path, body)


def test_a_pushed_user_keeps_its_times_on_the_member(tmp_path):
    """Issue 8: GetUser on a member showed 1970 (the push dropped the user's times)."""
    controller_config = model.Server(admin_password_hash=b"\x01" * 20, listeners=[], hubs=[model.Hub(
        "HUB2", hub_type=model.HUB_STATIC, created_time=1_700_000_000.0, users=[model.User(
            "bob", hashed_key=b"\x03" * 20, created_time=1_700_000_001.5, updated_time=1_700_000_002.25)])])

    async def body(ctl, server, role):
        await role.start()
        await until(online(role))
        await until(lambda: server.state.config.hubs != [])
        assert await ctl.push(ctl.joined[0], hubs=hub_configs(controller_config), serial=30) == \
            ChunkAck(sync_id=30, next_index=1, serial=30)
        assert server.state.config.hubs == controller_config.hubs
        user = dispatch(AdminContext(server=server), "GetUser", {"HubName_str": "HUB2", "Name_str": "bob"})
        assert (user["CreatedTime_dt"], user["UpdatedTime_dt"]) == ("2023-11-14T22:13:21.500Z",
                                                                    "2023-11-14T22:13:22.250Z")
        assert NodeState.open(server.state_dir).config.hubs == controller_config.hubs
    run(tmp_path, body)


def test_configured_public_ip_is_announced(tmp_path):
    async def body(ctl, server, role):
        await role.start()
        await until(online(role))
        assert ctl.hellos[0][1].public_ip == "192.0.2.7"
    run(tmp_path, body, public_ip="192.0.2.7")


def test_serves_status_polls_and_dynamic_instances(tmp_path):
    async def body(ctl, server, role):
        await role.start()
        await until(online(role))
        peer = ctl.joined[0]
        report = await ctl.request(peer, StatusPoll())
        assert isinstance(report, StatusReport)
        assert (report.points, report.sessions, report.max_sessions) == (100_000, 0, 100_000)
        assert await ctl.request(peer, CreateHubInstance(hub="DYN1")) == Ack()
        assert "dyn1" in server.dynamic_instances
        assert await ctl.request(peer, DeleteHubInstance(hub="DYN1", reason="empty")) == Ack()
        assert "dyn1" not in server.dynamic_instances
        assert server.dataplane.refreshed == 2
        # The member's points follow its weight (200 here): sessions cost half as much.
        server.session_count = lambda: 10
        report = await ctl.request(peer, StatusPoll())
        assert (report.sessions, report.points) == (10, 99_995)
    run(tmp_path, body)


def test_a_delta_off_its_base_is_not_applied_and_identical_sync_writes_nothing(tmp_path):
    async def body(ctl, server, role):
        await role.start()
        await until(online(role))
        await until(lambda: server.state.config.hubs != [])
        peer, serial = ctl.joined[0], server.state.config.serial
        assert await ctl.push(peer) == ChunkAck(sync_id=10, next_index=1, serial=10)
        assert server.state.config.serial == serial
        gap = ConfigDelta(base_serial=3, serial=4, changes=[HubChange(hub="HUB1", deleted=True)])
        assert await ctl.request(peer, gap) == ConfigAck(serial=10)  # a gap: the controller sends it all
        assert server.state.config.find_hub("HUB1") is not None
        delete = ConfigDelta(base_serial=10, serial=11, changes=[HubChange(hub="HUB1", deleted=True)])
        assert await ctl.request(peer, delete) == ConfigAck(serial=11)
        assert server.state.config.find_hub("HUB1") is None
        bad = [HubConfig(**{**{f: getattr(HUBS[0], f) for f in HUBS[0].__slots__}, "hub_type": 0})]
        with pytest.raises(RemoteError) as refused:
            await ctl.push(peer, hubs=bad, serial=20)
        assert refused.value.code == Err.INVALID_PARAMETER
        assert role.receiver.serial == -1  # not stored: the next probe finds no serial
        assert await ctl.push(peer, hubs=[], serial=21) == ChunkAck(sync_id=21, next_index=1, serial=21)
        assert server.state.config.hubs == []
    run(tmp_path, body)


def test_wrong_password_refused_and_retries_slowly(tmp_path):
    async def body(ctl, server, role):
        loop = asyncio.get_running_loop()
        began = loop.time()
        await role.start()
        await until(lambda: role.status().link.num_failed >= 3)
        elapsed = loop.time() - began
        # attempts start at least retry_interval_s (0.3 s) apart: no storm. A
        # slow machine only makes `elapsed` longer, never the bound tighter;
        # a storm would have sent many hellos before the third failure was seen.
        assert len(ctl.hellos) <= elapsed / 0.3 + 1
        status = role.status()
        assert not status.link.online
        assert status.link.last_error == Err.ACCESS_DENIED
        assert status.link.last_error_text == "wrong controller password or not the real controller"
        assert ctl.joined == []
        assert keys.load_pinned(server.state_dir / "bus", "controller") is None
    run(tmp_path, body, member_hash=hash_admin_password("not-the-password"))


def test_a_fake_controller_that_accepts_our_proof_is_not_trusted(tmp_path):
    async def body(ctl, server, role):
        ctl.fake = True
        await role.start()
        await until(lambda: ctl.aborts >= 1 and len(ctl.early_push_results) >= 1)
        assert not any(isinstance(result, (Ack, ChunkAck)) for result in ctl.early_push_results)
        assert server.state.config.hubs == []
        status = role.status()
        assert not status.link.online and status.link.last_error == Err.ACCESS_DENIED
        assert keys.load_pinned(server.state_dir / "bus", "controller") is None
    run(tmp_path, body)


def test_a_controller_that_did_not_prove_the_password_cannot_push(tmp_path):
    async def body(ctl, server, role):
        ctl.push_on_hello = True
        await role.start()
        await until(lambda: len(ctl.early_push_results) >= 2)
        for result in ctl.early_push_results:
            assert isinstance(result, RemoteError) and result.code == Err.ACCESS_DENIED
        assert server.state.config.hubs == []
        assert not role.status().link.online
    run(tmp_path, body, member_hash=hash_admin_password("not-the-password"))


def test_changed_controller_key_is_never_connected(tmp_path):
    async def body(ctl, server, role):
        keys.save_pinned(server.state_dir / "bus", "controller", keys.new_keypair().public)
        await role.start()
        await until(lambda: role.status().link.num_failed >= 1)
        status = role.status()
        assert status.link.last_error == Err.CERT_NOT_TRUSTED
        assert ctl.discoveries >= 1
        assert ctl.hellos == [] and ctl.bus.peers == frozenset()
    run(tmp_path, body)


def test_controller_silence_then_return_rejoins(tmp_path):
    async def body(ctl, server, role):
        await role.start()
        await until(online(role))
        await until(lambda: server.state.config.hubs != [])
        http_port, bus_port = ctl.http_port, ctl.bus_port
        await ctl.stop()
        await until(lambda: not role.status().link.online)
        # DISCONNECTED, or already the next attempt's "cannot reach" (fast retries here)
        assert role.status().link.last_error in (Err.DISCONNECTED, Err.CONNECT_TO_FARM_CONTROLLER)
        assert server.state.config.find_hub("HUB1") is not None   # nothing torn down
        back = await FakeController(ctl.state_dir, PASSWORD_HASH).start(http_port, bus_port)
        try:
            await until(lambda: role.status().link.num_connected == 2)
            assert role.status().link.online
        finally:
            await back.stop()
    run(tmp_path, body)


def test_rejoin_message_runs_the_join_again(tmp_path):
    async def body(ctl, server, role):
        await role.start()
        await until(online(role))
        assert await ctl.request(ctl.joined[0], Rejoin(reason="evicted")) == Ack()
        await until(lambda: role.status().link.num_connected == 2)
        assert len(ctl.hellos) == 2
    run(tmp_path, body)


def test_stop_sends_leave(tmp_path):
    async def body(ctl, server, role):
        await role.start()
        await until(online(role))
        await role.stop()
        await until(lambda: ctl.leaves != [])
        assert role.link.state is LinkState.STOPPED
    run(tmp_path, body)


def test_unreachable_controller_counts_failures(tmp_path):
    async def body(ctl, server, role):
        await ctl.stop()
        await role.start()
        await until(lambda: role.status().link.num_failed >= 2)
        status = role.status()
        assert status.link.last_error == Err.CONNECT_TO_FARM_CONTROLLER
        assert (status.controller_ip, status.controller_port) == ("0.0.0.0", 0)
    run(tmp_path, body)


def test_admin_method_reports_the_link(tmp_path):
    async def body(ctl, server, role):
        await role.start()
        await until(online(role))
        result = dispatch(AdminContext(server=server), "GetFarmConnectionStatus", {})
        assert result["Online_bool"] is True
        assert (result["Ip_ip"], result["Port_u32"]) == ("127.0.0.1", ctl.http_port)
        assert (result["NumTry_u32"], result["NumConnected_u32"], result["NumFailed_u32"]) == (1, 1, 0)
        assert result["LastError_u32"] == 0
        assert not result["FirstConnectedTime_dt"].startswith("1970")
    run(tmp_path, body)


def test_admin_method_refuses_when_not_a_member(tmp_path):
    server = make_server(tmp_path / "m", 1)
    server.state.change(lambda c: setattr(c.farm, "server_type", model.SERVER_STANDALONE))
    with pytest.raises(RpcError) as err:
        dispatch(AdminContext(server=server), "GetFarmConnectionStatus", {})
    assert err.value.code == Err.NOT_FARM_MEMBER


def test_a_push_after_the_member_setting_changed_is_refused(tmp_path):
    # SetFarmSetting changes the config first and stops the role a moment later.
    async def body(ctl, server, role):
        await role.start()
        await until(online(role))
        await until(lambda: server.state.config.hubs != [])

        def standalone(config: model.Server) -> None:
            config.farm, config.hubs = model.Farm(), []
        server.state.change(standalone)
        with pytest.raises(RemoteError) as err:
            await ctl.push(ctl.joined[-1])
        assert err.value.code == Err.NOT_FARM_MEMBER
        assert server.state.config.hubs == []
    run(tmp_path, body)


def test_a_setting_changed_during_the_join_pins_nothing(tmp_path):
    # SetFarmSetting (a new controller) deletes the pin while a join to the old one is in flight.
    async def body(ctl, server, role):
        def new_setting() -> None:
            def change(config: model.Server) -> None:
                config.farm = model.Farm(**{**vars(config.farm), "controller_host": "127.0.0.2"})
            server.state.change(change)
        ctl.on_proof = new_setting
        await role.start()
        await until(lambda: role.status().link.num_failed >= 1)
        assert not role.status().link.online
        assert role.status().link.last_error == Err.NOT_FARM_MEMBER
        assert keys.load_pinned(server.state_dir / "bus", "controller") is None
        assert server.state.config.hubs == []
    run(tmp_path, body)
