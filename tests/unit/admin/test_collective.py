"""Collective administration on a controller (node/admin/collective.py and
methods_session.py): every member asked at once within a deadline, rows
marked with the server they live on, a member that does not answer named
and never waited for."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import pytest

from controller.member_life import MemberState
from controller.messages import Ack, MacRow, MacTable, SessionList, SessionRow
from controller.registry import Member
from node.admin import collective, methods_session
from node.admin.jsonrpc import RpcError
from node.cluster import member_services
from node.dataplane.hubs import RunningHub
from node.softether.errors import Err
from node.state import model
from tests.unit.admin.admin_call import call, error_of
from tests.unit.dataplane.fakes import FakeSession, make_server
from vpnbus.endpoint import RemoteError, RequestFailed, RequestTimeout

Behaviour = Callable[[Any], Awaitable[Any]]


def _row(name: str) -> SessionRow:
    return SessionRow(name=name, username="administrator", client_ip="127.0.0.9", client_hostname="c",
                      created_time=1_800_000_000.0, last_comm_time=1_800_000_001.0, tcp_connections=1,
                      max_tcp_connections=1, packet_bytes=10, packet_count=1)


async def never(message: Any) -> Any:
    """A frozen member: the request never completes, whatever its deadline."""
    await asyncio.Event().wait()


async def not_found(message: Any) -> Any:
    raise RemoteError(Err.OBJECT_NOT_FOUND, "no such thing here")


async def timed_out(message: Any) -> Any:
    raise RequestTimeout("no reply")


def answering(reply: Any) -> Behaviour:
    async def answer(message: Any) -> Any:
        return reply
    return answer


class FakeRole:
    """The controller role as the gathering sees it: the listing and request()."""

    def __init__(self, members: dict[str, Behaviour]) -> None:
        self.members = [Member(member_id=1, public_key=b"1", is_me=True, state=MemberState.ONLINE,
                               last_heard_at=0.0, hostname="ctl-host")]
        self.behaviours: dict[int, Behaviour] = {}
        for i, (hostname, behaviour) in enumerate(members.items(), 2):
            self.members.append(Member(member_id=i, public_key=bytes([i]), is_me=False,
                                       state=MemberState.ONLINE, last_heard_at=0.0, hostname=hostname))
            self.behaviours[i] = behaviour
        self.asked: list[tuple[int, Any, float]] = []

    def listed_members(self) -> list[Member]:
        return list(self.members)

    async def request(self, member_id: int, message: object, timeout_s: float = 5.0) -> object:
        self.asked.append((member_id, message, timeout_s))
        return await self.behaviours[member_id](message)


def test_a_frozen_member_costs_the_deadline_and_is_missing():
    role = FakeRole({"m-ok": answering(SessionList(sessions=[])), "m-frozen": never, "m-slow": timed_out})
    deadline_s = 0.2

    async def main() -> list[collective.Outcome]:
        # the frozen member never answers: that the gathering returns at all
        # (within a generous 10 s, not a figure of this machine's speed) shows
        # it does not wait for it
        return await asyncio.wait_for(collective.ask_members(role, object(), timeout_s=deadline_s), 10.0)

    outcomes = asyncio.run(main())
    # each request carried the deadline
    assert [t for _, _, t in role.asked] == [deadline_s] * 3
    assert [type(o).__name__ for o in outcomes] == ["Answered", "Missing", "Missing"]
    assert [o.server.hostname for o in outcomes] == ["m-ok", "m-frozen", "m-slow"]
    frozen = outcomes[1]
    assert isinstance(frozen, collective.Missing) and "no answer within 0.2 s" in frozen.reason


def test_no_members_no_requests():
    role = FakeRole({})
    assert asyncio.run(collective.ask_members(role, object())) == []
    assert role.asked == []


@pytest.fixture
def controller(tmp_path, monkeypatch):
    """A controller node with one local session and a fake role for its members."""
    server = make_server(tmp_path, hubs=[model.Hub("DEFAULT", hub_type=model.HUB_STATIC)])
    server.hostname = "ctl-host"
    inst = RunningHub("DEFAULT")
    server.hubs["default"] = inst
    inst.add_session(FakeSession(inst, "alice"))
    roles: dict[str, FakeRole] = {}

    def use(members: dict[str, Behaviour]) -> FakeRole:
        roles["role"] = FakeRole(members)
        return roles["role"]

    monkeypatch.setattr(methods_session, "controller_of", lambda s: roles.get("role"))
    return server, use


def test_enum_session_merges_every_server_and_names_the_missing_one(controller):
    server, use = controller
    use({"m2": answering(SessionList(sessions=[_row("SID-ADMINISTRATOR-1"), _row("SID-ADMINISTRATOR-2")])),
         "m3": never})
    res = call(server, "EnumSession", {"HubName_str": "default"})
    where = [(r["Name_str"], r["RemoteSession_bool"], r["RemoteHostname_str"]) for r in res["SessionList"]]
    assert where == [("SID-ALICE-1", False, "ctl-host"), ("SID-ADMINISTRATOR-1", True, "m2"),
                     ("SID-ADMINISTRATOR-2", True, "m2")]
    assert [(m["Id"], m["Hostname"]) for m in res[collective.MISSING_KEY]] == [(3, "m3")]


def test_nothing_missing_means_softethers_answer_exactly(controller):
    server, use = controller
    use({"m2": answering(SessionList(sessions=[]))})
    res = call(server, "EnumSession", {"HubName_str": "default"})
    assert set(res) == {"HubName_str", "SessionList"}


def test_get_session_status_of_a_members_session(controller, tmp_path):
    server, use = controller
    (tmp_path / "m3").mkdir()
    member = make_server(tmp_path / "m3", hubs=[model.Hub("DEFAULT", hub_type=model.HUB_STATIC)])
    inst = RunningHub("DEFAULT")
    member.hubs["default"] = inst
    inst.add_session(FakeSession(inst, "bob"))
    inst.add_session(FakeSession(inst, "bob"))

    async def served_by_member(message: Any) -> Any:
        try:
            return member_services.serve(member, message)
        except RequestFailed as exc:  # the member's refusal, as the bus carries it
            raise RemoteError(exc.code, exc.text) from None

    use({"m2": not_found, "m3": served_by_member})
    res = call(server, "GetSessionStatus", {"HubName_str": "DEFAULT", "Name_str": "SID-BOB-2"})
    assert (res["Name_str"], res["Username_str"]) == ("SID-BOB-2", "bob")
    assert res["ServerHostname_str"] == "m3" and res["ServerName_str"] == "m3"
    assert collective.MISSING_KEY not in res
    assert error_of(server, "GetSessionStatus", {"HubName_str": "DEFAULT", "Name_str": "SID-EVE-7"}) \
        == Err.OBJECT_NOT_FOUND


def test_delete_session_goes_to_the_member_that_has_it(controller):
    server, use = controller
    role = use({"m2": not_found, "m3": answering(Ack())})
    res = call(server, "DeleteSession", {"HubName_str": "DEFAULT", "Name_str": "SID-BOB-2"})
    assert res == {"HubName_str": "DEFAULT", "Name_str": "SID-BOB-2"}
    assert sorted(m for m, _, _ in role.asked) == [2, 3]
    # the controller's own session is disconnected here, without asking anyone
    role.asked.clear()
    call(server, "DeleteSession", {"HubName_str": "DEFAULT", "Name_str": "SID-ALICE-1"})
    assert role.asked == []


def test_delete_session_nowhere_is_not_found_and_names_the_missing(controller):
    server, use = controller
    use({"m2": not_found, "m3": never})
    with pytest.raises(RpcError) as info:
        call(server, "DeleteSession", {"HubName_str": "DEFAULT", "Name_str": "SID-BOB-2"})
    assert info.value.code == Err.OBJECT_NOT_FOUND and "m3" in str(info.value)


def test_a_bridge_on_a_member_cannot_be_disconnected(controller):
    server, use = controller

    async def bridge(message: Any) -> Any:
        raise RemoteError(Err.BRIDGE_CANT_DISCONNECT, "a local bridge")

    use({"m2": not_found, "m3": bridge})
    assert error_of(server, "DeleteSession", {"HubName_str": "DEFAULT", "Name_str": "SID-LOCALBRIDGE-1"}) \
        == Err.BRIDGE_CANT_DISCONNECT


def test_mac_table_rows_carry_their_server_and_deletes_reach_members(controller):
    server, use = controller
    row = MacRow(key=7, session_name="SID-ADMINISTRATOR-1", mac=bytes(6), vlan_id=0,
                 created_time=1_800_000_000.0, updated_time=1_800_000_000.0)
    use({"m2": answering(MacTable(rows=[row]))})
    rows = call(server, "EnumMacTable", {"HubName_str": "DEFAULT"})["MacTable"]
    assert [(r["Key_u32"], r["RemoteItem_bool"], r["RemoteHostname_str"]) for r in rows] == [(7, True, "m2")]
    use({"m2": answering(Ack())})
    assert call(server, "DeleteMacTable", {"HubName_str": "DEFAULT", "Key_u32": 7})["Key_u32"] == 7
    use({"m2": not_found})
    assert error_of(server, "DeleteIpTable", {"HubName_str": "DEFAULT", "Key_u32": 7}) == Err.OBJECT_NOT_FOUND


def test_unknown_hub_is_refused_before_asking_anyone(controller):
    server, use = controller
    role = use({"m2": never})
    assert error_of(server, "EnumSession", {"HubName_str": "nope"}) == Err.HUB_NOT_FOUND
    assert role.asked == []


def test_only_a_running_controller_gathers(tmp_path):
    server = make_server(tmp_path)
    assert collective.controller_of(server) is None            # standalone
    server.state.change(lambda c: setattr(c.farm, "server_type", model.SERVER_MEMBER))
    assert collective.controller_of(server) is None            # member: its own rows only
    server.state.change(lambda c: setattr(c.farm, "server_type", model.SERVER_CONTROLLER))
    assert collective.controller_of(server) is None            # controller mode, no role running
