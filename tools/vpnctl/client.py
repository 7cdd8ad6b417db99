"""SoftEther JSON-RPC admin client over HTTPS (standard library only).

Protocol (softether-protocol.md §8.1, SoftEther's Admin.c JsonRpcProcPost):
`POST /api/` with headers X-VPNADMIN-PASSWORD (plaintext admin password) and
X-VPNADMIN-HUBNAME (absent = server admin, a hub name = that hub's admin), body
`{"jsonrpc":"2.0","id":"<string>","method":M,"params":{...}}`. Every request
is authenticated; a wrong password is HTTP 401 with an HTML body. Success and
SoftEther errors are both HTTP 200: `{"result":{...}}` or
`{"error":{"code":n,"message":...}}`. A numeric id comes back as "0", so we
send string ids.

TLS: SoftEther servers use self-signed certificates, so, like vpncmd, the
certificate is not verified by default. `pin_sha256` checks the SHA-256 of the
server's DER certificate right after the handshake, before the password is
sent.

One HTTPS connection is kept alive across calls. If a reused connection turns
out to have been closed by the server before it answered (an idle keep-alive
connection the server dropped), the call is sent once more on a fresh
connection; a fresh connection closed without an answer is an error.

Every failure is one of the typed errors below; none carries a traceback
worth showing to an operator.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
from typing import Any

from node.state.tlscert import client_context

MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class AdminError(Exception):
    """Base of every error this client raises."""


class RpcError(AdminError):
    """The server answered with a JSON-RPC error (a SoftEther error number)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class AuthError(AdminError):
    """HTTP 401: wrong admin password, wrong hub name, or hub admin not allowed."""


class TransportError(AdminError):
    """The server could not be reached or did not answer: connection refused,
    name resolution, timeout, connection closed. `kind` is a short tag
    ("connect", "timeout", "closed") for callers that want to branch."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class TlsError(AdminError):
    """The TLS handshake failed or the certificate did not match the pin."""


class ProtocolError(AdminError):
    """The server answered, but not with SoftEther JSON-RPC (wrong port or
    service, HTTP error status, malformed JSON)."""


def normalize_fingerprint(text: str) -> str:
    """Lower-case hex without separators; accepts "AB:CD:..." and "abcd...".

    Raises ValueError if it is not 32 bytes of hex.
    """
    fp = text.replace(":", "").replace(" ", "").strip().lower()
    if len(fp) != 64 or any(c not in "0123456789abcdef" for c in fp):
        raise ValueError("a SHA-256 fingerprint is 64 hex digits")
    return fp


class AdminClient:
    """A JSON-RPC admin session to one SoftEther-compatible server."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        admin_hub: str = "",
        pin_sha256: str | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self._password = password
        self._admin_hub = admin_hub
        self._pin = normalize_fingerprint(pin_sha256) if pin_sha256 else None
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._conn: http.client.HTTPSConnection | None = None
        self._next_id = 1
        self.server_cert_sha256: str | None = None

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call `method`; return its `result` object.

        Raises RpcError, AuthError, TransportError, TlsError, ProtocolError.
        """
        body = json.dumps(
            {"jsonrpc": "2.0", "id": str(self._next_id), "method": method, "params": params or {}}
        ).encode()
        self._next_id += 1
        reused = self._conn is not None
        try:
            status, data = self._exchange(body)
        except _StaleConnection:
            if not reused:
                raise TransportError("closed", self._where("the server closed the connection")) from None
            self.close()
            try:
                status, data = self._exchange(body)
            except _StaleConnection:
                raise TransportError("closed", self._where("the server closed the connection")) from None
        return self._decode(status, data)

    # -- internals ---------------------------------------------------------

    def _where(self, text: str) -> str:
        return f"{self.host}:{self.port}: {text}"

    def _connect(self) -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection(  # self-signed servers, as vpncmd; see pin_sha256
            self.host, self.port, timeout=self._connect_timeout_s, context=client_context()
        )
        try:
            conn.connect()
        except ssl.SSLError as e:
            conn.close()
            raise TlsError(self._where(f"TLS handshake failed: {e.reason or e}")) from None
        except (socket.timeout, TimeoutError):
            conn.close()
            raise TransportError("timeout", self._where("connection timed out")) from None
        except socket.gaierror as e:
            conn.close()
            raise TransportError("connect", self._where(f"cannot resolve host: {e.strerror}")) from None
        except OSError as e:
            conn.close()
            reason = e.strerror or str(e) or type(e).__name__
            raise TransportError("connect", self._where(f"cannot connect: {reason}")) from None
        assert conn.sock is not None
        der = conn.sock.getpeercert(binary_form=True) or b""
        self.server_cert_sha256 = hashlib.sha256(der).hexdigest()
        if self._pin is not None and self.server_cert_sha256 != self._pin:
            conn.close()
            raise TlsError(
                self._where(
                    f"server certificate SHA-256 {self.server_cert_sha256} does not match the pinned one"
                )
            )
        conn.sock.settimeout(self._read_timeout_s)
        return conn

    def _exchange(self, body: bytes) -> tuple[int, bytes]:
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        # UTF-8 bytes: SoftEther hashes the header's raw bytes (http.client
        # would send a str as Latin-1, and fail on anything beyond it).
        headers: dict[str, str | bytes] = {"Content-Type": "application/json",
                                           "X-VPNADMIN-PASSWORD": self._password.encode("utf-8")}
        if self._admin_hub:
            # Only when set: SoftEther 5.01 drops the connection, without an
            # answer, on any request header with an empty value.
            headers["X-VPNADMIN-HUBNAME"] = self._admin_hub.encode("utf-8")
        try:
            conn.request("POST", "/api/", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read(MAX_RESPONSE_BYTES + 1)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ssl.SSLEOFError):
            # SSLEOFError: the server dropped an idle kept-alive connection without a TLS close.
            self.close()
            raise _StaleConnection() from None
        except (socket.timeout, TimeoutError):
            self.close()
            raise TransportError("timeout", self._where("no answer before the timeout")) from None
        except ssl.SSLError as e:
            self.close()
            raise TlsError(self._where(f"TLS error: {e.reason or e}")) from None
        except (http.client.HTTPException, OSError) as e:
            self.close()
            raise ProtocolError(self._where(f"bad HTTP answer: {e or type(e).__name__}")) from None
        if len(data) > MAX_RESPONSE_BYTES:
            self.close()
            raise ProtocolError(self._where("answer too large"))
        if resp.will_close:
            self.close()
        return resp.status, data

    def _decode(self, status: int, data: bytes) -> dict[str, Any]:
        if status == 401:
            who = f"hub {self._admin_hub!r} admin" if self._admin_hub else "server admin"
            raise AuthError(self._where(f"authentication failed as {who} (HTTP 401)"))
        if status != 200:
            raise ProtocolError(self._where(f"HTTP {status} (is this a SoftEther admin port?)"))
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, ValueError):
            raise ProtocolError(self._where("the answer is not JSON")) from None
        if not isinstance(doc, dict):
            raise ProtocolError(self._where("the answer is not a JSON-RPC object"))
        err = doc.get("error")
        if err is not None:
            if not isinstance(err, dict) or not isinstance(err.get("code"), int):
                raise ProtocolError(self._where("malformed JSON-RPC error object"))
            raise RpcError(err["code"], str(err.get("message", "")))
        result = doc.get("result")
        if not isinstance(result, dict):
            raise ProtocolError(self._where("JSON-RPC answer without a result object"))
        return result


class _StaleConnection(Exception):
    """A kept-alive connection was closed by the server before it answered."""
