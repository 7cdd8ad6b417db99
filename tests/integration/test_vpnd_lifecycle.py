"""vpnd start-up and shutdown as an operator sees them."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import time

from node.state import model
from node.state.node_state import NodeState
from tests.vpnd_proc import Vpnd, free_port, rpc


def _run_vpnd(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node.daemon", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_first_start_without_password_file_generates_one(tmp_path):
    state = tmp_path / "n"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "node.daemon", "--state-dir", str(state),
                             "--listen", f"127.0.0.1:{port}"], stderr=subprocess.PIPE, text=True)
    try:
        node = Vpnd(state, port=port)
        pw_path = state / "admin-password"
        node.proc = proc
        deadline = time.monotonic() + 20
        while not pw_path.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        node.password = pw_path.read_text().strip()
        assert len(node.password) >= 16
        assert stat.S_IMODE(pw_path.stat().st_mode) == 0o600
        node.wait_ready()
        assert "result" in rpc(port, node.password, "GetServerInfo")
        assert rpc(port, "", "GetServerInfo") == {"http_status": 401}
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert str(state / "admin-password") in err
    assert "Traceback" not in err


def test_corrupt_config_refused_with_one_line(tmp_path):
    node = Vpnd(tmp_path / "n").start()
    node.call("CreateHub", {"HubName_str": "H", "Online_bool": True})
    assert node.stop() == 0
    node.start()           # this start writes a backup holding hub H
    assert node.stop() == 0
    config = tmp_path / "n" / "vpnd.config.json"
    damaged = config.read_bytes()[:-40]
    config.write_bytes(damaged)
    result = _run_vpnd("--state-dir", str(tmp_path / "n"), "--listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert str(config) in lines[0] and "newest good backup" in lines[0] and "backups/" in lines[0]
    assert config.read_bytes() == damaged


def test_damaged_saved_listener_is_one_clear_line(tmp_path):
    state = tmp_path / "n"
    state.mkdir()
    NodeState.create(state, model.Server(admin_password_hash=bytes(range(20)), listeners=["127.0.0.1:443"]))
    config = state / "vpnd.config.json"
    doc = json.loads(config.read_text())
    doc["listeners"] = ["127.0.0.1:notaport"]
    config.write_text(json.dumps(doc))
    result = _run_vpnd("--state-dir", str(state))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert str(config) in lines[0] and "config.listeners" in lines[0] and "notaport" in lines[0]


def test_busy_port_is_one_clear_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run_vpnd("--state-dir", str(tmp_path / "n"), "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_is_a_clean_exit(vpnd):
    assert vpnd.stop() == 0
    assert "shutting down" in vpnd.log()


def test_unusable_password_file_is_one_clear_line(tmp_path):
    for content, words in ((b"\n", "is empty"), (b"\xff\xfe\n", "is not UTF-8")):
        pw = tmp_path / "pw"
        pw.write_bytes(content)
        result = _run_vpnd("--state-dir", str(tmp_path / "n"), "--listen", f"127.0.0.1:{free_port()}",
                           "--admin-password-file", str(pw))
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and words in result.stderr, result.stderr
        assert not (tmp_path / "n" / "vpnd.config.json").exists()


def test_damaged_certificate_is_one_clear_line_and_kept(tmp_path):
    node = Vpnd(tmp_path / "n").start()
    assert node.stop() == 0
    cert = tmp_path / "n" / "server.crt"
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    result = _run_vpnd("--state-dir", str(tmp_path / "n"), "--listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and str(cert) in result.stderr, result.stderr
    assert cert.read_bytes().endswith(b"garbage\n-----END CERTIFICATE-----\n")
