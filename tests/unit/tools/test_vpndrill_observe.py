"""tools/vpndrill/observe.py's Observer on canned admin answers: members
named by address and port, sessions given to the server whose host name is
unique, drain states read."""

from __future__ import annotations

from typing import Any

from tools.vpndrill.observe import Observer
from tools.vpndrill.timeline import SessionRow


class CannedAdmin:
    """Answers like a controller's JSON-RPC admin API; counts GetFarmInfo calls."""

    def __init__(self) -> None:
        self.info_calls = 0

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        if method == "EnumFarmMember":
            return {"FarmMemberList": [
                {"Id_u32": 1, "Controller_bool": True, "Hostname_str": "ctl", "NumSessions_u32": 1},
                {"Id_u32": 2, "Controller_bool": False, "Hostname_str": "m-a", "NumSessions_u32": 2,
                 "Ip_ip": "10.0.0.2"},
                {"Id_u32": 3, "Controller_bool": False, "Hostname_str": "m-b", "NumSessions_u32": 0,
                 "Ip_ip": "10.0.0.3", "DrainState_str": "drained"}]}
        if method == "GetFarmInfo":
            self.info_calls += 1
            mid = (params or {})["Id_u32"]
            return {"Ip_ip": f"10.0.0.{mid}", "Ports_u32": [443, 992]}
        if method == "EnumHub":
            return {"HubList": [{"HubName_str": "H"}]}
        if method == "EnumSession":
            return {"SessionList": [
                {"Name_str": "S1", "Username_str": "u", "ClientIP_ip": "1.1.1.1", "RemoteSession_bool": False},
                {"Name_str": "S2", "Username_str": "u", "ClientIP_ip": "1.1.1.2", "RemoteSession_bool": True,
                 "RemoteHostname_str": "m-a"},
                {"Name_str": "S3", "Username_str": "v", "ClientIP_ip": "1.1.1.3", "RemoteSession_bool": True,
                 "RemoteHostname_str": "gone"}]}
        raise AssertionError(method)


def test_a_poll_names_members_and_places_sessions():
    admin = CannedAdmin()
    observer = Observer(admin)  # type: ignore[arg-type]
    view = observer.poll()
    assert view.listed == {"controller", "10.0.0.2:443", "10.0.0.3:443"}
    assert view.counts == {"controller": 1, "10.0.0.2:443": 2, "10.0.0.3:443": 0}
    assert view.drains == {"10.0.0.3:443": "drained"}
    assert view.sessions == [SessionRow("H/S1", "u", "1.1.1.1", "controller"),
                             SessionRow("H/S2", "u", "1.1.1.2", "10.0.0.2:443"),
                             SessionRow("H/S3", "v", "1.1.1.3", "gone")]
    observer.poll()
    assert admin.info_calls == 2  # once per member id, not per poll
