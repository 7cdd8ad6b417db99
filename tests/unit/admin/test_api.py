"""POST /api/ as a client sends it: who may administer what, in which mode."""

from __future__ import annotations

import json

from node.admin.api import handle_admin_post
from node.softether.errors import Err
from node.softether.sha0 import sha0
from node.state import model
from tests.unit.dataplane.fakes import make_server


def post(server, hub: str, password: str, method: str, params: dict | None = None) -> dict:
    headers = {"x-vpnadmin-hubname": hub, "x-vpnadmin-password": password}
    body = json.dumps({"jsonrpc": "2.0", "id": "1", "method": method, "params": params or {}}).encode()
    status, _, answer = handle_admin_post(server, headers, body, "127.0.0.1:1")
    assert status == 200
    return json.loads(answer)


def test_a_hub_administrator_is_refused_on_a_member_and_served_elsewhere(tmp_path):
    hub = model.Hub("OFFICE", hub_type=model.HUB_STATIC, hashed_password=sha0(b"hubpw"))
    server = make_server(tmp_path, hubs=[hub])
    assert post(server, "OFFICE", "hubpw", "GetHub", {"HubName_str": "OFFICE"})["result"]["HubName_str"] == "OFFICE"
    server.state.change(lambda c: setattr(c.farm, "server_type", model.SERVER_MEMBER))
    answer = post(server, "OFFICE", "hubpw", "GetHub", {"HubName_str": "OFFICE"})
    assert answer["error"]["code"] == Err.FARM_MEMBER_HUB_ADMIN
    # the server administrator still administers the member
    server.state.change(lambda c: setattr(c, "admin_password_hash", sha0(b"srvpw")))
    assert "result" in post(server, "", "srvpw", "GetServerInfo")
