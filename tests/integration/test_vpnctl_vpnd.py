"""vpnctl driving our vpnd as an operator would: the CLI, tables, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys


def vpnctl(node, *words, password=None, hub=None, hub_admin=False, json_out=False):
    pw_file = node.state_dir.parent / "vpnctl.pw"
    pw_file.write_text((node.password if password is None else password) + "\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "tools.vpnctl.main", "--server", f"127.0.0.1:{node.port}",
           "--password-file", str(pw_file)]
    if hub:
        cmd += ["--hub", hub]
    if hub_admin:
        cmd.append("--hub-admin")
    if json_out:
        cmd.append("--json")
    return subprocess.run(cmd + list(words), capture_output=True, text=True, timeout=60)


def ok(result):
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def test_operator_session(vpnd):
    out = ok(vpnctl(vpnd, "ServerInfoGet"))
    assert "vpncluster" in out
    ok(vpnctl(vpnd, "HubCreate", "OFFICE", "/PASSWORD:hubpw"))
    ok(vpnctl(vpnd, "UserCreate", "alice", "/GROUP:none", "/REALNAME:Alice", "/NOTE:ops", hub="OFFICE"))
    ok(vpnctl(vpnd, "UserPasswordSet", "alice", "/PASSWORD:secret", hub="OFFICE"))
    assert "OFFICE" in ok(vpnctl(vpnd, "HubList"))
    users = ok(vpnctl(vpnd, "UserList", hub="OFFICE"))
    assert "alice" in users and "Alice" in users
    assert "Alice" in ok(vpnctl(vpnd, "UserGet", "alice", hub="OFFICE"))
    doc = json.loads(ok(vpnctl(vpnd, "HubList", json_out=True)))
    assert [h["HubName_str"] for h in doc["HubList"]] == ["OFFICE"]
    ok(vpnctl(vpnd, "HubSetOffline", hub="OFFICE"))
    doc = json.loads(ok(vpnctl(vpnd, "HubList", json_out=True)))
    assert doc["HubList"][0]["Online_bool"] is False
    ok(vpnctl(vpnd, "HubSetOnline", hub="OFFICE"))
    status = ok(vpnctl(vpnd, "ServerStatusGet"))
    assert "Standalone Server" in status
    assert any(line.split("|")[0].strip() == "Number of Users" and line.split("|")[1].strip() == "1"
               for line in status.splitlines())
    # the hub administrator manages its own hub only
    assert "alice" in ok(vpnctl(vpnd, "UserList", hub="OFFICE", hub_admin=True, password="hubpw"))
    refused = vpnctl(vpnd, "HubCreate", "OTHER", hub="OFFICE", hub_admin=True, password="hubpw")
    assert refused.returncode != 0 and "ERR_NOT_ENOUGH_RIGHT" in refused.stderr
    ok(vpnctl(vpnd, "UserDelete", "alice", hub="OFFICE"))
    missing = vpnctl(vpnd, "UserGet", "alice", hub="OFFICE")
    assert missing.returncode != 0 and "ERR_OBJECT_NOT_FOUND" in missing.stderr
    ok(vpnctl(vpnd, "HubDelete", "OFFICE"))
    ok(vpnctl(vpnd, "ServerPasswordSet", "new-admin-pw"))
    vpnd.password = "new-admin-pw"
    assert "vpncluster" in ok(vpnctl(vpnd, "ServerInfoGet"))
    # a password beyond ASCII: hashed from the same UTF-8 bytes on both sides
    ok(vpnctl(vpnd, "ServerPasswordSet", "pässwört-密码"))
    vpnd.password = "pässwört-密码"
    assert "vpncluster" in ok(vpnctl(vpnd, "ServerInfoGet"))
    assert vpnctl(vpnd, "ServerInfoGet", password="passwort-密码").returncode == 4


def test_errors_are_one_line_with_non_zero_exit(vpnd, tmp_path):
    wrong = vpnctl(vpnd, "HubList", password="wrong")
    assert wrong.returncode != 0
    assert len(wrong.stderr.strip().splitlines()) == 1 and "Traceback" not in wrong.stderr
    dup = vpnctl(vpnd, "HubCreate", "X")
    assert dup.returncode == 0
    dup = vpnctl(vpnd, "HubCreate", "X")
    assert dup.returncode != 0 and "ERR_HUB_ALREADY_EXISTS" in dup.stderr
    assert len(dup.stderr.strip().splitlines()) == 1
    vpnd.stop()
    down = vpnctl(vpnd, "HubList")
    assert down.returncode != 0 and len(down.stderr.strip().splitlines()) == 1
