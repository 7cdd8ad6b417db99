"""The client side of one SE-VPN negotiation, sans-IO (softether-protocol.md §3, §5.2).

One `ClientLogin` drives one TCP/TLS connection from the first byte to the
data plane:

    initiate()          -> signature POST (`VPNCONNECT`, like our server accepts
                           and SoftEther's ServerDownloadSignature too)
    hello arrives       -> the auth PACK is queued (password: SHA0(SHA0(pw||USER)
                           ||random); ticket: authtype 99, the same user/hub)
    welcome arrives     -> `Welcomed` (the data plane starts on the same stream;
                           `trailing_data` holds any blocks already received)
    redirect arrives    -> `Redirected`; an empty PACK is queued (the real client
                           sends one before it closes, and SoftEther's controller
                           reads it before its error epilogue)
    error arrives       -> ServerError(code) raised (e.g. ERR_AUTH_FAILED)

Invariants: each input step happens once and in order; bytes to write are
pulled with `data_to_send()` after every `receive_data()`; any event after
the terminal one is a ProtocolError. The caller owns the timeouts (SoftEther:
15 s per receive, CONNECTING_TIMEOUT).

Like SoftEther's client we ask for one TCP connection, no QoS and no
half-connection, so a SoftEther server never expects additional connections
from us (its welcome then carries max_connection >= 1; we use only one).
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

from node.softether.handshake import AuthRequest, AuthType, Hello, Redirect, Welcome, parse_login_reply
from node.softether.httpmsg import PackClientChannel
from node.softether.pack import Pack, RandBytes
from node.softether.protocol_error import ProtocolError
from node.softether.sha0 import hash_password, secure_password

CLIENT_STR = "vpncluster VPN Client"


@dataclass(frozen=True, slots=True)
class PasswordLogin:
    """Password authentication with SoftEther's stored key SHA0(pw || USER)."""

    hashed_password: bytes

    @classmethod
    def from_plain(cls, username: str, password: str) -> PasswordLogin:
        return cls(hash_password(username, password))


@dataclass(frozen=True, slots=True)
class TicketLogin:
    """One-time ticket from a controller's redirect (authtype 99)."""

    ticket: bytes


Credentials = PasswordLogin | TicketLogin


@dataclass(frozen=True, slots=True)
class Welcomed:
    """The server accepted the login; the stream now carries data blocks."""

    welcome: Welcome
    hello: Hello


@dataclass(frozen=True, slots=True)
class Redirected:
    """A cluster controller sent us to a member; close after data_to_send()."""

    redirect: Redirect
    hello: Hello


LoginEvent = Welcomed | Redirected


class _Phase(enum.Enum):
    IDLE = "idle"
    HELLO = "waiting for hello"
    REPLY = "waiting for login reply"
    DONE = "done"


class ClientLogin:
    """Sans-IO login of one connection; see the module docstring.

    `host` goes into the HTTP Host header (SoftEther sends the server's IP
    string). `rand_bytes` draws the PACK padding (None: no padding, for
    exact-bytes tests).
    """

    def __init__(self, *, host: str, hub: str, username: str, credentials: Credentials,
                 client_str: str = CLIENT_STR, rand_bytes: RandBytes | None = os.urandom,
                 unique_id: bytes = b"") -> None:
        self._channel = PackClientChannel(host)
        self._hub = hub
        self._username = username
        self._credentials = credentials
        self._client_str = client_str
        self._unique_id = unique_id
        self._rand_bytes = rand_bytes
        self._phase = _Phase.IDLE
        self._out = bytearray()
        self.hello: Hello | None = None

    def initiate(self) -> bytes:
        """The signature request, the first bytes on the connection."""
        if self._phase is not _Phase.IDLE:
            raise ValueError("login already started")
        self._phase = _Phase.HELLO
        return self._channel.signature_request()

    def data_to_send(self) -> bytes:
        """Bytes queued by the last receive_data(); clears them."""
        out = bytes(self._out) + self._channel.data_to_send()
        self._out.clear()
        return out

    @property
    def trailing_data(self) -> bytes:
        """Bytes the server sent beyond the welcome (the first data blocks)."""
        return self._channel.trailing_data

    @property
    def done(self) -> bool:
        return self._phase is _Phase.DONE

    def receive_data(self, data: bytes) -> LoginEvent | None:
        """Feed server bytes (b"" = the server closed). Returns the terminal
        event once; None while more bytes are needed.

        Raises ServerError (the server refused, `code` says why),
        ProtocolError (anything unusable, including a close mid-way).
        """
        if self._phase in (_Phase.IDLE, _Phase.DONE):
            raise ProtocolError(f"unexpected data while {self._phase.value}")
        self._channel.receive_data(data)
        while True:
            pack = self._channel.next_pack()
            if pack is None:
                return None
            if self._phase is _Phase.HELLO:
                self.hello = Hello.from_pack(pack)
                self._out += self._channel.send_pack(self._auth_request(self.hello).to_pack(), self._rand_bytes)
                self._phase = _Phase.REPLY
                continue
            reply = parse_login_reply(pack)
            self._phase = _Phase.DONE
            assert self.hello is not None
            if isinstance(reply, Redirect):
                self._out += self._channel.send_pack(Pack(), self._rand_bytes)
                return Redirected(reply, self.hello)
            return Welcomed(reply, self.hello)

    def _auth_request(self, hello: Hello) -> AuthRequest:
        creds = self._credentials
        if isinstance(creds, TicketLogin):
            authtype, ticket, proof = AuthType.TICKET, creds.ticket, b""
        else:
            authtype, ticket = AuthType.PASSWORD, b""
            proof = secure_password(creds.hashed_password, hello.random)
        return AuthRequest(hubname=self._hub, username=self._username, authtype=authtype,
                           secure_password=proof, ticket=ticket, client_str=self._client_str,
                           max_connection=1, qos=False, half_connection=False, use_encrypt=True,
                           unique_id=self._unique_id)
