"""SetFarmSetting / GetFarmSetting in-process: validation naming the field,
backup first, hub conversion per mode, pin deletion, the password never
shown; EnumFarmMember / GetFarmInfo refuse off a controller, and their rows
say why a member's endpoint keeps sessions away; the error table."""

from __future__ import annotations

import pytest

from controller import errors as ce
from controller.drain import DrainState, DrainView
from controller.member_life import MemberState
from controller.registry import EndpointState, Member
from node.admin.jsonvalue import b64
from node.admin.methods_farm import _member_row
from node.cluster.errors_map import error_number, rpc_error
from node.softether.errors import Err
from node.softether.sha0 import hash_admin_password
from node.state import model
from node.state.node_state import NodeState
from tests.unit.admin.admin_call import call, error_of
from tests.unit.dataplane.fakes import make_server

MEMBER = {"ServerType_u32": 2, "ControllerName_str": "127.0.0.1", "ControllerPort_u32": 5555,
          "MemberPasswordPlaintext_str": "pw", "PublicIp_ip": "0.0.0.0", "Ports_u32": [443, 5555]}


@pytest.fixture
def server(tmp_path):
    return make_server(tmp_path, hubs=[model.Hub("A"), model.Hub("B", online=False)],
                       bridges=[model.Bridge("A", "tap0", True)])


def backups(tmp_path):
    return [p.name for p in (tmp_path / "backups").iterdir() if p.name.endswith("mode-change")]


def test_controller_makes_hubs_dynamic_after_a_backup(server, tmp_path):
    res = call(server, "SetFarmSetting", {"ServerType_u32": 1, "Weight_u32": 0, "ControllerOnly_bool": True})
    assert res["ServerType_u32"] == 1 and res["Weight_u32"] == 100 and res["ControllerOnly_bool"] is True
    config = NodeState.open(tmp_path).config
    assert [h.hub_type for h in config.hubs] == [model.HUB_DYNAMIC, model.HUB_DYNAMIC]
    assert len(backups(tmp_path)) == 1
    call(server, "SetFarmSetting", {"ServerType_u32": 0})
    assert [h.hub_type for h in NodeState.open(tmp_path).config.hubs] == [0, 0]
    assert len(backups(tmp_path)) == 2


def test_member_setting_saved_hubs_replaced_pin_deleted_password_hidden(server, tmp_path):
    pin = tmp_path / "bus" / "controller.pinned"
    pin.parent.mkdir()
    pin.write_text("x" * 40)
    res = call(server, "SetFarmSetting", MEMBER)
    assert not pin.exists()
    farm = NodeState.open(tmp_path).config.farm
    assert farm.member_password_hash == hash_admin_password("pw")
    assert (farm.controller_host, farm.controller_port, farm.public_ip, farm.public_ports) == \
        ("127.0.0.1", 5555, "", [443, 5555])
    config = NodeState.open(tmp_path).config
    assert config.hubs == [] and config.bridges == [model.Bridge("A", "tap0", True)]
    shown = call(server, "GetFarmSetting", {})
    assert shown == res
    assert shown["MemberPassword_bin"] == b64(bytes(20)) and shown["MemberPasswordPlaintext_str"] == ""
    assert shown["PublicIp_ip"] == "0.0.0.0" and shown["Ports_u32"] == [443, 5555]


def test_member_password_as_sha0_binary(server, tmp_path):
    digest = hash_admin_password("secret")
    params = {k: v for k, v in MEMBER.items() if k != "MemberPasswordPlaintext_str"}
    call(server, "SetFarmSetting", {**params, "MemberPassword_bin": b64(digest)})
    assert NodeState.open(tmp_path).config.farm.member_password_hash == digest


@pytest.mark.parametrize("change, field", [
    ({"ControllerName_str": ""}, "ControllerName_str"),
    ({"ControllerPort_u32": 0}, "ControllerPort_u32"),
    ({"Ports_u32": []}, "Ports_u32"),
    ({"Ports_u32": [443, 443]}, "Ports_u32"),
    ({"Ports_u32": list(range(1, 130))}, "Ports_u32"),
    ({"Ports_u32": [70000]}, "Ports_u32"),
    ({"MemberPasswordPlaintext_str": None}, "MemberPassword"),
    ({"MemberPassword_bin": b64(b"short")}, "MemberPassword_bin"),
    ({"ServerType_u32": 3}, "ServerType_u32"),
])
def test_incomplete_member_setting_refused_naming_the_field(server, tmp_path, change, field):
    params = {k: v for k, v in {**MEMBER, **change}.items() if v is not None}
    from node.admin.jsonrpc import RpcError
    with pytest.raises(RpcError) as err:
        call(server, "SetFarmSetting", params)
    assert err.value.code == Err.INVALID_PARAMETER and field in str(err.value)
    assert NodeState.open(tmp_path).config.farm.server_type == model.SERVER_STANDALONE
    assert not (tmp_path / "backups").exists() or not backups(tmp_path)


def test_member_to_standalone_drops_the_controllers_hubs(server, tmp_path):
    call(server, "SetFarmSetting", MEMBER)
    server.state.change(lambda c: c.hubs.append(model.Hub("PUSHED", hub_type=model.HUB_STATIC)))
    call(server, "SetFarmSetting", {"ServerType_u32": 0})
    config = NodeState.open(tmp_path).config
    assert config.hubs == [] and config.farm == model.Farm()


def test_controller_views_refused_elsewhere(server):
    assert error_of(server, "EnumFarmMember", {}) == Err.NOT_FARM_CONTROLLER
    assert error_of(server, "GetFarmInfo", {"Id_u32": 1}) == Err.NOT_FARM_CONTROLLER
    call(server, "SetFarmSetting", {"ServerType_u32": 1})
    # Controller mode saved but no role running (no listener in this test).
    assert error_of(server, "EnumFarmMember", {}) == Err.NOT_FARM_CONTROLLER


def test_error_table():
    assert error_number(ce.TicketExpired("x")) == Err.AUTH_FAILED
    assert error_number(ce.NoEligibleServer("x")) == Err.COULD_NOT_HOST_HUB_ON_FARM
    assert error_number(ce.MemberUnknown("x")) == Err.OBJECT_NOT_FOUND
    assert error_number(ce.IllegalTransition("m", "s", "e")) == Err.INTERNAL_ERROR
    assert rpc_error(ce.HubUnknown("no hub")).code == Err.HUB_NOT_FOUND


class _Role:
    def __init__(self, drain: DrainView | None = None) -> None:
        self.drain = drain

    def wall_time(self, monotonic_at):
        return None

    def drain_view(self, member_id):
        return self.drain


def test_member_rows_say_why_the_endpoint_keeps_sessions_away():
    me = Member(member_id=1, public_key=b"c" * 32, is_me=True, state=MemberState.ONLINE, last_heard_at=0.0)
    member = Member(member_id=2, public_key=b"m" * 32, is_me=False, state=MemberState.ONLINE, last_heard_at=0.0,
                    public_ip="192.0.2.7", public_ports=(5555,))
    assert _member_row(_Role(), me)["EndpointError_str"] == ""
    assert _member_row(_Role(), member)["EndpointError_str"] == "endpoint not verified"
    member.endpoint_state, member.endpoint_error = EndpointState.FAILED, "192.0.2.7:5555: connection refused"
    assert _member_row(_Role(), member)["EndpointError_str"] == "endpoint failed: 192.0.2.7:5555: connection refused"
    member.endpoint_state, member.endpoint_error = EndpointState.OK, ""
    assert _member_row(_Role(), member)["EndpointError_str"] == ""


def test_member_rows_show_the_drain_state():
    me = Member(member_id=1, public_key=b"c" * 32, is_me=True, state=MemberState.ONLINE, last_heard_at=0.0)
    member = Member(member_id=2, public_key=b"m" * 32, is_me=False, state=MemberState.ONLINE, last_heard_at=0.0)
    draining = _Role(DrainView(state=DrainState.DRAINING, rate=5.0, moved=3))
    assert _member_row(draining, member)["DrainState_str"] == "draining"
    assert _member_row(draining, me)["DrainState_str"] == ""  # the controller is never drained
    assert _member_row(_Role(), member)["DrainState_str"] == ""
