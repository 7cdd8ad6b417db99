"""Careless and hostile admin input against a real vpnd (issue 13, findings
1, 5 and 10): nothing that cannot be stored is saved, the hub keeps working
across a restart, a malformed Basic header never puts what it carried in
the log, and no web origin gets at the API unless it is configured."""

from __future__ import annotations

import base64
import http.client
import json

from node.admin.jsonvalue import MAX_TEXT_CHARS
from node.softether.errors import Err
from node.state.tlscert import client_context
from tests.vpnd_proc import Vpnd, rpc_raw


def _call(vpnd, method: str, params: dict) -> dict:
    body = json.dumps({"jsonrpc": "2.0", "id": "1", "method": method, "params": params}).encode()
    status, data = rpc_raw(vpnd.port, body, {"X-VPNADMIN-PASSWORD": vpnd.password})
    assert status == 200 and data, (status, data)
    return json.loads(data)


def test_unstorable_or_absurd_text_is_refused_and_the_hub_survives_a_restart(vpnd):
    """Finding 1: a lone surrogate in Note_utf got an empty answer, but the
    user was saved and EnumUser on that hub failed from then on, even after
    a restart; a 1.1 MB note was saved too."""
    assert "result" in _call(vpnd, "CreateHub", {"HubName_str": "H", "Online_bool": True})
    bad = _call(vpnd, "CreateUser", {"HubName_str": "H", "Name_str": "mallory", "Note_utf": "\ud800"})
    assert bad["error"]["code"] == Err.INVALID_PARAMETER and "Note_utf" in bad["error"]["message"]
    big = _call(vpnd, "CreateUser", {"HubName_str": "H", "Name_str": "big", "Note_utf": "n" * 1_100_000})
    assert big["error"]["code"] == Err.INVALID_PARAMETER
    assert f"at most {MAX_TEXT_CHARS}" in big["error"]["message"]
    assert "result" in _call(vpnd, "CreateUser", {"HubName_str": "H", "Name_str": "alice", "Note_utf": "ok"})
    assert vpnd.stop() == 0
    vpnd.start()
    users = _call(vpnd, "EnumUser", {"HubName_str": "H"})["result"]["UserList"]
    assert [u["Name_str"] for u in users] == ["alice"]


def test_basic_auth_without_a_colon_never_reaches_the_log(vpnd):
    """Finding 10: the decoded value (likely the admin password) was logged as a hub name."""
    secret = "S3cret-admin-password"
    body = json.dumps({"jsonrpc": "2.0", "id": "1", "method": "Test", "params": {}}).encode()
    header = "Basic " + base64.b64encode(secret.encode()).decode()
    status, _ = rpc_raw(vpnd.port, body, {"Authorization": header})
    assert status == 401
    assert "result" in _call(vpnd, "Test", {})   # logged by now: the 401 came first
    assert "admin login refused" in vpnd.log()
    assert secret not in vpnd.log()


class _CorsVpnd(Vpnd):
    """vpnd started with one allowed web origin."""

    def popen(self, argv: list[str], **kwargs):
        return super().popen([*argv, "--cors-origin", "https://admin.example"], **kwargs)


def _allowed_origin(port: int, origin: str) -> str | None:
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=client_context())
    try:
        conn.request("OPTIONS", "/api/", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
        resp = conn.getresponse()
        resp.read()
        return resp.getheader("Access-Control-Allow-Origin")
    finally:
        conn.close()


def test_cross_origin_access_only_for_a_configured_origin(vpnd, tmp_path):
    """Finding 5: any Origin was reflected with credentials allowed."""
    assert _allowed_origin(vpnd.port, "https://evil.example") is None
    configured = _CorsVpnd(tmp_path / "cors").start()
    try:
        assert _allowed_origin(configured.port, "https://admin.example") == "https://admin.example"
        assert _allowed_origin(configured.port, "https://evil.example") is None
    finally:
        configured.stop()
