"""Server and hub listings in-process: GetServerStatus and EnumHub count the
members' sessions on a controller (as SoftEther's StGetServerStatus and
StEnumHub), only their own elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from controller.registry import HubInstance
from node.state import model
from tests.unit.admin.admin_call import call
from tests.unit.dataplane.fakes import make_server


@dataclass
class _Member:
    is_me: bool
    sessions: int
    tcp_connections: int
    hubs: dict


class _ControllerRole:
    def listed_members(self):
        return [_Member(True, 99, 99, {"a": _hub("A", 99)}), _Member(False, 3, 4, {"a": _hub("A", 3)}),
                _Member(False, 5, 6, {"a": _hub("a", 1), "gone": _hub("Gone", 4)})]


def _hub(name: str, sessions: int) -> HubInstance:
    # each session on a member has brought one MAC and two IP entries
    return HubInstance(name=name, dynamic=False, sessions=sessions, mac_entries=sessions, ip_entries=2 * sessions)


def _counts(res):
    return {k: res[k] for k in ("NumSessionsTotal_u32", "NumSessionsLocal_u32", "NumSessionsRemote_u32",
                                "NumTcpConnections_u32", "NumTcpConnectionsRemote_u32")}


def test_server_status_adds_members_on_a_controller_only(tmp_path):
    server = make_server(tmp_path, hubs=[model.Hub("A", hub_type=model.HUB_STATIC)])
    server.cluster = SimpleNamespace(controller=_ControllerRole())  # the holder with a running controller
    # still standalone in the config: the role object alone counts nothing
    assert call(server, "EnumHub", {})["HubList"][0]["NumSessions_u32"] == 0
    assert _counts(call(server, "GetServerStatus", {})) == {
        "NumSessionsTotal_u32": 0, "NumSessionsLocal_u32": 0, "NumSessionsRemote_u32": 0,
        "NumTcpConnections_u32": 0, "NumTcpConnectionsRemote_u32": 0}

    def controller(config):
        config.farm.server_type = model.SERVER_CONTROLLER
    server.state.change(controller)
    res = call(server, "GetServerStatus", {})
    assert _counts(res) == {"NumSessionsTotal_u32": 8, "NumSessionsLocal_u32": 0, "NumSessionsRemote_u32": 8,
                            "NumTcpConnections_u32": 10, "NumTcpConnectionsRemote_u32": 10}
    assert res["NumHubStatic_u32"] == 1 and res["ServerType_u32"] == model.SERVER_CONTROLLER
    hubs = call(server, "EnumHub", {})["HubList"]
    assert [(h["HubName_str"], h["NumSessions_u32"], h["NumMacTables_u32"], h["NumIpTables_u32"])
            for h in hubs] == [("A", 4, 4, 8)]


def test_server_cert_without_the_key(tmp_path):
    server = make_server(tmp_path)
    server.cert_der = b"\x30\x03\x02\x01\x00"
    res = call(server, "GetServerCert", {})
    assert res == {"Cert_bin": "MAMCAQA=", "Flag1_u32": 0}  # never the private key


def test_flush_reports_the_configuration_file_size(tmp_path):
    server = make_server(tmp_path)
    assert call(server, "Flush", {})["IntValue_u32"] == server.state.store.path.stat().st_size > 0


def test_listeners_are_listed_once_per_port(tmp_path):
    server = make_server(tmp_path)
    server.state.change(lambda c: setattr(c, "listeners", ["127.0.0.1:5555", "[::1]:5555", ":443"]))
    assert call(server, "EnumListener", {}) == {"ListenerList": [
        {"Ports_u32": 5555, "Enables_bool": True, "Errors_bool": False},
        {"Ports_u32": 443, "Enables_bool": True, "Errors_bool": False}]}
