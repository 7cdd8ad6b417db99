"""A raw client of SoftEther's binary admin RPC for tests: TLS, the
signature, the hello, the `admin` login, then length-framed PACK calls, as
vpncmd does (node/admin/binary_rpc.py describes the protocol). Blocking
sockets on loopback; each read is bounded by the socket timeout."""

from __future__ import annotations

import socket
import ssl
import struct

from node.softether.handshake import Hello
from node.softether.httpmsg import PackClientChannel
from node.softether.pack import Pack
from node.softether.sha0 import hash_admin_password, secure_password

TIMEOUT_S = 10.0


class AdminRefused(Exception):
    """The server answered the `admin` login with an error."""

    def __init__(self, code: int) -> None:
        super().__init__(f"admin login refused with error {code}")
        self.code = code


def admin_connection(port: int, password: str, hub: str = "", host: str = "127.0.0.1") -> ssl.SSLSocket:
    """A logged-in admin RPC socket (hub administrator of `hub` if given);
    AdminRefused with the server's error otherwise."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    sock = ctx.wrap_socket(socket.create_connection((host, port), timeout=TIMEOUT_S))
    channel = PackClientChannel(host)

    def next_pack() -> Pack:
        for _ in range(100):
            found = channel.next_pack()
            if found is not None:
                return found
            channel.receive_data(sock.recv(65536))
        raise AssertionError("no reply")

    sock.sendall(channel.signature_request())
    hello = Hello.from_pack(next_pack())
    login = Pack()
    login.add_str("method", "admin")
    login.add_bool("accept_empty_password", True)
    login.add_data("secure_password", secure_password(hash_admin_password(password), hello.random))
    if hub:
        login.add_str("hubname", hub)
    sock.sendall(channel.send_pack(login))
    reply = next_pack()
    if reply.get_int("error"):
        sock.close()
        raise AdminRefused(reply.get_int("error"))
    assert channel.trailing_data == b""
    return sock


def call(sock: ssl.SSLSocket, function: str, request: Pack | None = None) -> Pack:
    """One call and its reply (`function` "" sends no function_name)."""
    p = request.copy() if request is not None else Pack()
    if function:
        p.add_str("function_name", function)
    body = p.encode()
    sock.sendall(struct.pack(">I", len(body)) + body)
    head = recv_exact(sock, 4)
    return Pack.decode(recv_exact(sock, struct.unpack(">I", head)[0]))


def recv_exact(sock: ssl.SSLSocket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def closed_by_peer(sock: ssl.SSLSocket) -> bool:
    """Whether the server closed the connection (reads until it does or the timeout)."""
    try:
        return sock.recv(1) == b""
    except (ConnectionError, ssl.SSLError):
        return True
