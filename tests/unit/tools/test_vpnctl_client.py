"""The JSON-RPC client and the CLI's error lines against a scripted local
HTTPS server on 127.0.0.1 (no SoftEther needed)."""

from __future__ import annotations

import datetime
import hashlib
import http.server
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tools.vpnctl import main as cli
from tools.vpnctl.client import AdminClient, AuthError, ProtocolError, RpcError, TlsError, TransportError

Reply = tuple[int, bytes]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[str, str, str]:
    """A self-signed certificate, its key, and its SHA-256 fingerprint."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-softether")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    d = tmp_path_factory.mktemp("tls")
    (d / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "k.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    fp = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return str(d / "c.pem"), str(d / "k.pem"), fp


class FakeAdmin:
    """A threaded HTTPS server; `script(headers, body)` gives (status, body)."""

    def __init__(self, tls_files, script: Callable[[dict[str, str], dict], Reply]) -> None:
        self.requests: list[tuple[dict[str, str], dict]] = []
        self.connections = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                outer.connections += 1
                super().setup()

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {k.upper(): v for k, v in self.headers.items()}
                outer.requests.append((headers, body))
                status, data = script(headers, body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    self.close_connection = True  # the client gave up (timeout tests)

            def log_message(self, *args) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass  # clients that hang up on purpose are expected here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls_files[0], tls_files[1])
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def result(doc: dict, rid: str = "1") -> Reply:
    return 200, json.dumps({"result": doc, "jsonrpc": "2.0", "id": rid}).encode()


@pytest.fixture
def fake(tls_files) -> Iterator[Callable[..., FakeAdmin]]:
    servers: list[FakeAdmin] = []

    def start(script) -> FakeAdmin:
        servers.append(FakeAdmin(tls_files, script))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def test_request_shape_and_result(fake):
    srv = fake(lambda h, b: result({"HubList": []}))
    with AdminClient("127.0.0.1", srv.port, "pw") as c:
        assert c.call("EnumHub") == {"HubList": []}
        assert c.call("EnumHub", {}) == {"HubList": []}
    (headers, body), (_, body2) = srv.requests
    assert headers["X-VPNADMIN-PASSWORD"] == "pw"
    assert "X-VPNADMIN-HUBNAME" not in headers  # SoftEther drops requests with empty header values
    assert body == {"jsonrpc": "2.0", "id": "1", "method": "EnumHub", "params": {}}
    assert body2["id"] == "2" and isinstance(body2["id"], str)
    assert srv.connections == 1  # kept alive


def test_hub_admin_header(fake):
    srv = fake(lambda h, b: result({}))
    with AdminClient("127.0.0.1", srv.port, "hubpw", admin_hub="hub1") as c:
        c.call("EnumUser", {"HubName_str": "hub1"})
    assert srv.requests[0][0]["X-VPNADMIN-HUBNAME"] == "hub1"


def test_password_goes_as_utf8_bytes(fake):
    srv = fake(lambda h, b: result({}))
    with AdminClient("127.0.0.1", srv.port, "pä-密码") as c:
        c.call("Test")
    # http.server hands header values over decoded as Latin-1
    assert srv.requests[0][0]["X-VPNADMIN-PASSWORD"].encode("latin-1") == "pä-密码".encode()


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ((401, b"<html>401 Unauthorized</html>"), AuthError),
        ((500, b"oops"), ProtocolError),
        ((200, b"<html>not json</html>"), ProtocolError),
        ((200, b"[1, 2]"), ProtocolError),
        ((200, b'{"jsonrpc": "2.0", "id": "1"}'), ProtocolError),
        ((200, b'{"error": {"code": "x"}}'), ProtocolError),
    ],
)
def test_bad_answers_are_typed(fake, reply, error):
    srv = fake(lambda h, b: reply)
    with AdminClient("127.0.0.1", srv.port, "pw") as c, pytest.raises(error):
        c.call("EnumHub")


def test_rpc_error(fake):
    body = {"error": {"code": 57, "message": "Error code 57: exists"}, "jsonrpc": "2.0", "id": "1"}
    srv = fake(lambda h, b: (200, json.dumps(body).encode()))
    with AdminClient("127.0.0.1", srv.port, "pw") as c, pytest.raises(RpcError) as e:
        c.call("CreateHub", {"HubName_str": "x"})
    assert (e.value.code, e.value.message) == (57, "Error code 57: exists")


def test_read_timeout(fake):
    answer = threading.Event()     # the server answers only after the client gave up
    srv = fake(lambda h, b: (answer.wait(30), result({}))[1])
    try:
        with AdminClient("127.0.0.1", srv.port, "pw", read_timeout_s=0.2) as c, \
                pytest.raises(TransportError) as e:
            c.call("EnumHub")
    finally:
        answer.set()
    assert e.value.kind == "timeout"


def test_pin(fake, tls_files):
    srv = fake(lambda h, b: result({}))
    fp = tls_files[2]
    colon = ":".join(fp[i : i + 2] for i in range(0, 64, 2)).upper()
    with AdminClient("127.0.0.1", srv.port, "pw", pin_sha256=colon) as c:
        c.call("Test")
        assert c.server_cert_sha256 == fp
    with AdminClient("127.0.0.1", srv.port, "pw", pin_sha256="ab" * 32) as c, pytest.raises(TlsError):
        c.call("Test")
    assert len(srv.requests) == 1  # the mismatching client never sent its password


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused():
    with AdminClient("127.0.0.1", _closed_port(), "pw") as c, pytest.raises(TransportError) as e:
        c.call("Test")
    assert e.value.kind == "connect"


def test_not_tls_is_a_tls_error():
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)

        def serve() -> None:
            conn, _ = lsock.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\nplain text here, not TLS\r\n")

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        with AdminClient("127.0.0.1", lsock.getsockname()[1], "pw") as c, pytest.raises(TlsError):
            c.call("Test")
        t.join(timeout=5)


def test_stale_keepalive_connection_is_retried_once(fake):
    srv = fake(lambda h, b: result({"ok_bool": True}))
    with AdminClient("127.0.0.1", srv.port, "pw") as c:
        c.call("Test")
        # The server side goes away between calls (idle timeout, restart).
        assert c._conn is not None and c._conn.sock is not None
        c._conn.sock.shutdown(socket.SHUT_RDWR)
        assert c.call("Test") == {"ok_bool": True}


def test_a_kept_alive_connection_ended_without_a_tls_close_is_retried_once(fake, monkeypatch):
    srv = fake(lambda h, b: result({"ok_bool": True}))
    with AdminClient("127.0.0.1", srv.port, "pw") as c:
        c.call("Test")
        stale = c._conn

        def eof(*args, **kwargs):
            raise ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
        monkeypatch.setattr(stale, "getresponse", eof)
        assert c.call("Test") == {"ok_bool": True} and c._conn is not stale


# -- the CLI's one-line errors and exit codes ----------------------------------------


def run_cli(capsys, monkeypatch, *argv: str, password: str = "pw") -> tuple[int, str, str]:
    monkeypatch.setenv("VPNCTL_PASSWORD", password)
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_table_json_and_errors(fake, capsys, monkeypatch):
    def script(h, b):
        if h["X-VPNADMIN-PASSWORD"] != "pw":
            return 401, b"<html>401</html>"
        if b["method"] == "DeleteHub":
            return 200, json.dumps({"error": {"code": 8, "message": "Error code 8: x"}}).encode()
        if b["method"] == "GetServerInfo":
            return result({"ServerHostName_str": "node-a", "ServerType_u32": 1})
        return result({"HubList": [{"HubName_str": "h", "Online_bool": True, "HubType_u32": 1}]})

    srv = fake(script)
    server = f"127.0.0.1:{srv.port}"
    code, out, err = run_cli(capsys, monkeypatch, "--server", server, "hublist")
    assert code == 0 and err == ""
    assert out.splitlines()[2].split("|")[:3] == [" h                  ", " Online   ", " Static "]
    code, out, err = run_cli(capsys, monkeypatch, "--server", server, "--json", "ServerInfoGet")
    assert code == 0 and json.loads(out) == {"ServerHostName_str": "node-a", "ServerType_u32": 1}
    code, out, err = run_cli(capsys, monkeypatch, "--server", server, "HubDelete", "h")
    assert (code, out) == (1, "") and err == "Error: ERR_HUB_NOT_FOUND (8): no such Virtual Hub on the server\n"
    code, out, err = run_cli(capsys, monkeypatch, "--server", server, "HubList", password="bad")
    assert code == 4 and err.startswith("Error: ERR_AUTH_FAILED (9): ") and "HTTP 401" in err
    assert err.count("\n") == 1


def test_cli_unknown_error_code_uses_server_text(fake, capsys, monkeypatch):
    body = {"error": {"code": 4321, "message": "Error code 4321: Something odd."}}
    srv = fake(lambda h, b: (200, json.dumps(body).encode()))
    code, _, err = run_cli(capsys, monkeypatch, "--server", f"127.0.0.1:{srv.port}", "HubList")
    assert (code, err) == (1, "Error: ERR_UNKNOWN_4321 (4321): Something odd.\n")


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        # vpnd: our text plus a detail in parentheses -- the detail is shown
        ("Error code 33: not supported (vpncluster does not implement SecureNAT)",
         "not supported (vpncluster does not implement SecureNAT)"),
        # SoftEther: its own wording -- ours is shown, as for every known code
        ("Error code 33: The specified function is not supported.", "not supported"),
        ("Error code 33: not supportedX", "not supported"),
    ],
)
def test_cli_error_shows_vpnds_detail(fake, capsys, monkeypatch, message, shown):
    body = {"error": {"code": 33, "message": message}}
    srv = fake(lambda h, b: (200, json.dumps(body).encode()))
    code, _, err = run_cli(capsys, monkeypatch, "--server", f"127.0.0.1:{srv.port}", "HubList")
    assert (code, err) == (1, f"Error: ERR_NOT_SUPPORTED (33): {shown}\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["NoSuchVerb"],
        ["UserList"],  # needs --hub
        ["--hub-admin", "HubList"],
        ["--server", "host:99999", "HubList"],
        ["--pin-sha256", "xyz", "HubList"],
        ["--password-file", "/nonexistent/pw", "HubList"],
        ["ClusterSettingMember", "ctl:443", "/PORTS:443"],
        ["--bogus-option", "HubList"],
        ["--timeout", "nan", "HubList"],
        ["--connect-timeout", "-1", "HubList"],
    ],
)
def test_cli_usage_errors_exit_2_without_contacting_anything(capsys, monkeypatch, argv):
    code, out, err = run_cli(capsys, monkeypatch, "--server", f"127.0.0.1:{_closed_port()}", *argv)
    assert code == 2 and out == ""
    assert err.startswith("Error: ") and err.count("\n") == 1


def test_cli_password_that_cannot_be_sent_is_a_usage_error(capsys, monkeypatch, tmp_path):
    not_utf8 = tmp_path / "pw"
    not_utf8.write_bytes(b"\xff\xfe\n")
    server = ["--server", f"127.0.0.1:{_closed_port()}"]
    code, out, err = run_cli(capsys, monkeypatch, *server, "--password-file", str(not_utf8), "HubList")
    assert code == 2 and "not UTF-8" in err and err.count("\n") == 1
    code, out, err = run_cli(capsys, monkeypatch, *server, "HubList", password="a\r\nX-Evil: 1")
    assert code == 2 and "control character" in err and err.count("\n") == 1


def test_cli_answer_it_cannot_render_is_one_line(fake, capsys, monkeypatch):
    srv = fake(lambda h, b: result({"HubList": "not a list"}))
    monkeypatch.delenv("VPNCTL_DEBUG", raising=False)
    code, out, err = run_cli(capsys, monkeypatch, "--server", f"127.0.0.1:{srv.port}", "HubList")
    assert code == 1 and out == "" and err.count("\n") == 1 and "unexpected failure" in err


def test_cli_unreachable_exit_3(capsys, monkeypatch):
    code, out, err = run_cli(capsys, monkeypatch, "--server", f"127.0.0.1:{_closed_port()}", "HubList")
    assert code == 3 and "cannot connect" in err and err.count("\n") == 1


def test_cli_password_file(fake, capsys, monkeypatch, tmp_path):
    srv = fake(lambda h, b: result({}) if h["X-VPNADMIN-PASSWORD"] == "from file" else (401, b""))
    pw = tmp_path / "pw"
    pw.write_text("from file\nsecond line ignored\n")
    monkeypatch.delenv("VPNCTL_PASSWORD", raising=False)
    code = cli.main(["--server", f"127.0.0.1:{srv.port}", "--password-file", str(pw), "BridgeList"])
    assert code == 0
