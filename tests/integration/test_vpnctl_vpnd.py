"""vpnctl driving our vpnd as an operator would: the CLI, tables, exit codes."""

from __future__ import annotations

import json


def ok(result):
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def test_operator_session(vpnd):
    out = ok(vpnd.vpnctl("ServerInfoGet"))
    assert "vpncluster" in out
    ok(vpnd.vpnctl("HubCreate", "OFFICE", "/PASSWORD:hubpw"))
    ok(vpnd.vpnctl("UserCreate", "alice", "/GROUP:none", "/REALNAME:Alice", "/NOTE:ops", hub="OFFICE"))
    ok(vpnd.vpnctl("UserPasswordSet", "alice", "/PASSWORD:secret", hub="OFFICE"))
    assert "OFFICE" in ok(vpnd.vpnctl("HubList"))
    users = ok(vpnd.vpnctl("UserList", hub="OFFICE"))
    assert "alice" in users and "Alice" in users
    assert "Alice" in ok(vpnd.vpnctl("UserGet", "alice", hub="OFFICE"))
    doc = json.loads(ok(vpnd.vpnctl("HubList", json_out=True)))
    assert [h["HubName_str"] for h in doc["HubList"]] == ["OFFICE"]
    ok(vpnd.vpnctl("HubSetOffline", hub="OFFICE"))
    doc = json.loads(ok(vpnd.vpnctl("HubList", json_out=True)))
    assert doc["HubList"][0]["Online_bool"] is False
    ok(vpnd.vpnctl("HubSetOnline", hub="OFFICE"))
    status = ok(vpnd.vpnctl("ServerStatusGet"))
    assert "Standalone Server" in status
    assert any(line.split("|")[0].strip() == "Number of Users" and line.split("|")[1].strip() == "1"
               for line in status.splitlines())
    # the hub administrator manages its own hub only
    assert "alice" in ok(vpnd.vpnctl("UserList", hub="OFFICE", hub_admin=True, password="hubpw"))
    refused = vpnd.vpnctl("HubCreate", "OTHER", hub="OFFICE", hub_admin=True, password="hubpw")
    assert refused.returncode != 0 and "ERR_NOT_ENOUGH_RIGHT" in refused.stderr
    ok(vpnd.vpnctl("UserDelete", "alice", hub="OFFICE"))
    missing = vpnd.vpnctl("UserGet", "alice", hub="OFFICE")
    assert missing.returncode != 0 and "ERR_OBJECT_NOT_FOUND" in missing.stderr
    ok(vpnd.vpnctl("HubDelete", "OFFICE"))
    ok(vpnd.vpnctl("ServerPasswordSet", "new-admin-pw"))
    vpnd.password = "new-admin-pw"
    assert "vpncluster" in ok(vpnd.vpnctl("ServerInfoGet"))
    # a password beyond ASCII: hashed from the same UTF-8 bytes on both sides
    ok(vpnd.vpnctl("ServerPasswordSet", "pässwört-密码"))
    vpnd.password = "pässwört-密码"
    assert "vpncluster" in ok(vpnd.vpnctl("ServerInfoGet"))
    assert vpnd.vpnctl("ServerInfoGet", password="passwort-密码").returncode == 4


def test_errors_are_one_line_with_non_zero_exit(vpnd, tmp_path):
    wrong = vpnd.vpnctl("HubList", password="wrong")
    assert wrong.returncode != 0
    assert len(wrong.stderr.strip().splitlines()) == 1 and "Traceback" not in wrong.stderr
    dup = vpnd.vpnctl("HubCreate", "X")
    assert dup.returncode == 0
    dup = vpnd.vpnctl("HubCreate", "X")
    assert dup.returncode != 0 and "ERR_HUB_ALREADY_EXISTS" in dup.stderr
    assert len(dup.stderr.strip().splitlines()) == 1
    vpnd.stop()
    down = vpnd.vpnctl("HubList")
    assert down.returncode != 0 and len(down.stderr.strip().splitlines()) == 1
