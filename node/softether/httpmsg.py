"""HTTP/1.1 framing of the SE-VPN negotiation (§3.1), sans-IO, on h11.

Before the data plane, every message is one HTTP message inside TLS:

    C->S  POST /vpnsvc/connect.cgi   the signature (signature.py); reply: hello
    C->S  POST /vpnsvc/vpn.cgi       Content-Type: application/octet-stream, body PACK
    S->C  HTTP/1.1 200 OK            Content-Type: application/octet-stream, body PACK

`PackServerChannel` and `PackClientChannel` wrap one `h11.Connection`. The
edge feeds received bytes with `receive_data()`, pulls complete messages
with `next_*()` (None = need more bytes), and writes the bytes that
`send_*()` return plus whatever `data_to_send()` holds (automatic NOOP
replies). After the last HTTP message (the welcome) the same stream carries
raw data blocks: `trailing_data` is what the peer already sent beyond the
last message; feed it to a BlockDecoder first.

SoftEther's receiver rules we enforce (HttpServerRecvEx / HttpClientRecv):
- server: POST, target /vpnsvc/vpn.cgi (case-insensitive), HTTP/1.1,
  Content-Type exactly application/octet-stream (case-insensitive, no
  parameters), Content-Length 1..65536 (HTTP_PACK_MAX_SIZE), no chunked body;
- client: status 200, the same Content-Type, Content-Length >= 1. SoftEther
  allows 512 MiB; we default to 8 MiB (`max_body`) to bound memory.
Anything else raises `HttpError` (a ProtocolError); SoftEther drops the
connection in these cases, and so should the edge.

Headers we send are what SoftEther sends minus `Date` (no clock here),
sorted by name as SoftEther emits them; no header value is ever empty
(SoftEther's parser rejects the whole header then).

NOOP (see handshake.py): the server channel answers C->S noop=1 by itself
(queued in `data_to_send()`) and silently skips noop=2; the client channel
consumes the reply to its own noop=1 and skips unasked S->C NOOPs (SoftEther
`master` may send noop=2 unasked while a login is slow). HTTP has no unanswered requests or unasked responses, so skipping
one restarts the h11 parser on the bytes that follow. At most 30 NOOPs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar, Union

import h11

from node.softether.errors import Err
from node.softether.handshake import (
    MAX_NOOP_PER_SESSION, NOOP_IGNORE, NOOP_REPLY_WANTED, noop_kind, noop_pack,
)
from node.softether.pack import Pack, RandBytes
from node.softether.protocol_error import ProtocolError
from node.softether.signature import (
    SIGNATURE_BODY, SIGNATURE_CONTENT_TYPE, SIGNATURE_TARGET, WATERMARK_MAX_SIZE,
    check_signature, check_signature_length,
)

PACK_TARGET = "/vpnsvc/vpn.cgi"  # HTTP_VPN_TARGET
PACK_CONTENT_TYPE = "application/octet-stream"  # HTTP_CONTENT_TYPE2
HTTP_PACK_MAX_SIZE = 65536  # the server's limit on a client's PACK
CLIENT_MAX_BODY = 8 * 1024 * 1024
_KEEP_ALIVE = [("Connection", "Keep-Alive"), ("Keep-Alive", "timeout=15; max=19")]
_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}

# What a channel reads: requests on the server side, responses on the client's.
_Head = TypeVar("_Head", h11.Request, h11.Response)
# A request as the client channel writes it (kept to replay after a restart).
_RequestEvents = list[Union[h11.Request, h11.Data, h11.EndOfMessage]]


class HttpError(ProtocolError):
    """The peer's HTTP is malformed or breaks SoftEther's rules; drop it."""

    def __init__(self, message: str, code: int = Err.PROTOCOL_ERROR) -> None:
        super().__init__(message, code)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A complete request: method/target as sent, lower-cased header names."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)


def _headers(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    for name, value in pairs:
        if not value:  # SoftEther's RecvHttpHeader rejects the whole header
            raise ValueError(f"empty value for header {name}")
    return sorted(pairs)


def _body_length(headers: list[tuple[bytes, bytes]]) -> int:
    """Content-Length (0 if absent); no Transfer-Encoding."""
    length = 0
    for name, value in headers:
        if name == b"transfer-encoding":
            raise HttpError("chunked bodies are not accepted")
        if name == b"content-length":
            length = int(value)  # h11 has checked it is digits
    return length


def _is_pack_type(value: str | None) -> bool:
    return value is not None and value.strip().lower() == PACK_CONTENT_TYPE


def _with_padding(pack: Pack, rand_bytes: RandBytes | None) -> bytes:
    if rand_bytes is None:
        return pack.encode()
    padded = pack.copy()
    padded.add_pencore(rand_bytes)
    return padded.encode()


class _Channel(Generic[_Head]):
    """Shared h11 plumbing: incremental message assembly, errors, restarts.

    `head_type` is the message head the peer sends in `role`'s connection:
    h11.Request for a server, h11.Response (not 1xx) for a client.
    """

    def __init__(self, role: type[h11.SERVER] | type[h11.CLIENT], head_type: type[_Head]) -> None:
        self._role = role
        self._head_type: type[_Head] = head_type
        self._conn = h11.Connection(role)
        self._head: _Head | None = None
        self._body = bytearray()
        self._noops = 0
        self._outbox = bytearray()
        self._broken: ProtocolError | None = None

    def receive_data(self, data: bytes) -> None:
        """Bytes from the peer; b"" means the peer closed its side."""
        try:
            self._conn.receive_data(data)
        except RuntimeError as e:  # data after the peer already closed
            raise HttpError(str(e), Err.DISCONNECTED) from None

    def data_to_send(self) -> bytes:
        """Bytes the channel produced on its own (NOOP replies); clears them."""
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the last complete HTTP message."""
        return self._conn.trailing_data[0]

    def _next_message(self, limit: int, on_head: Callable[[int], None] | None = None,
                      need_body: bool = True) -> tuple[_Head, bytes] | None:
        """Advance h11; return (head, body) of a complete message or None.

        `on_head(content_length)` may refuse the message before its body is
        buffered; `need_body`: SoftEther's PACK rule, Content-Length >= 1.
        After a refusal (HttpError, or what `on_head` raised) the stream is
        out of step (h11 is inside the refused message), so every later read
        raises that error again.
        """
        if self._broken is not None:
            raise self._broken
        try:
            return self._advance(limit, on_head, need_body)
        except ProtocolError as e:
            self._broken = e
            raise

    def _advance(self, limit: int, on_head: Callable[[int], None] | None,
                 need_body: bool) -> tuple[_Head, bytes] | None:
        conn = self._conn
        if self._role is h11.SERVER and conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()  # the client starts its cycles in _post
        try:
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA or ev is h11.PAUSED:
                    return None
                if isinstance(ev, self._head_type):
                    if ev.http_version != b"1.1":
                        raise HttpError("HTTP version must be 1.1")
                    length = _body_length(list(ev.headers))
                    if on_head is not None:
                        on_head(length)
                    if length > limit or (need_body and length == 0):
                        raise HttpError(f"Content-Length {length} outside {int(need_body)}..{limit}")
                    self._head = ev
                    self._body.clear()
                elif isinstance(ev, h11.Data):
                    self._body += ev.data
                elif isinstance(ev, h11.EndOfMessage):
                    head, body = self._head, bytes(self._body)
                    assert head is not None  # h11 ends only a message it began
                    self._head = None
                    self._body.clear()
                    return head, body
                elif isinstance(ev, h11.ConnectionClosed):
                    raise HttpError("peer closed the connection", Err.DISCONNECTED)
                # InformationalResponse (1xx): nothing to do
        except h11.RemoteProtocolError as e:
            raise HttpError(f"bad HTTP: {e}") from None

    def _count_noop(self) -> None:
        self._noops += 1
        if self._noops > MAX_NOOP_PER_SESSION:
            raise HttpError("too many NOOPs")

    def _restart(self, replay: _RequestEvents | None = None) -> None:
        """Fresh h11 parser on the unread bytes (after an unanswered message)."""
        rest, closed = self._conn.trailing_data
        self._conn = h11.Connection(self._role)
        for ev in replay or ():
            self._conn.send(ev)
        if rest:
            self._conn.receive_data(rest)
        if closed:
            self._conn.receive_data(b"")


class PackServerChannel(_Channel[h11.Request]):
    """Server side of one connection's negotiation.

    Typical use: `next_signature()` -> `send_pack(Hello(...).to_pack())`
    -> `next_pack()` -> `send_pack(Welcome/Redirect/ErrorReply ...)`; then
    hand `trailing_data` to the block decoder.
    """

    def __init__(self, max_body: int = HTTP_PACK_MAX_SIZE) -> None:
        super().__init__(h11.SERVER, h11.Request)
        self._max_body = max_body

    def next_request(self, max_body: int | None = None) -> HttpRequest | None:
        """Any complete request (for a listener that also serves other
        targets); HttpError if malformed or the body exceeds `max_body`."""
        msg = self._next_message(max_body or self._max_body, need_body=False)
        return None if msg is None else self._request(*msg)

    def next_signature(self) -> bool | None:
        """True once a valid signature POST arrived; None: need more bytes.

        Raises SignatureError: answer `send_status(err.http_status)`, then
        close if `err.fatal`, else read the next request (SoftEther allows
        19 attempts). The length is checked before the body is buffered.
        """
        msg = self._next_message(WATERMARK_MAX_SIZE, check_signature_length)
        if msg is None:
            return None
        req = self._request(*msg)
        check_signature(req.target, req.body)
        return True

    def next_pack(self) -> Pack | None:
        """The next C->S PACK (NOOPs handled here), or None: need more bytes.

        Raises HttpError (bad HTTP, target, type or length) or PackError.
        """
        while True:
            msg = self._next_message(self._max_body)
            if msg is None:
                return None
            req = self._request(*msg)
            if req.method.upper() != "POST" or req.target.lower() != PACK_TARGET:
                raise HttpError(f"expected POST {PACK_TARGET}, got {req.method} {req.target}")
            if not _is_pack_type(req.header("content-type")):
                raise HttpError(f"Content-Type {req.header('content-type')!r}")
            pack = Pack.decode(req.body, max_size=self._max_body)
            kind = noop_kind(pack)
            if not kind:
                return pack
            self._count_noop()
            if kind == NOOP_REPLY_WANTED:
                self._outbox += self._respond(200, noop_pack().encode(), PACK_CONTENT_TYPE)
            else:
                self._restart()

    def send_pack(self, pack: Pack, rand_bytes: RandBytes | None = os.urandom) -> bytes:
        """Bytes of `HTTP/1.1 200 OK` carrying `pack` (+ `pencore` padding
        drawn from `rand_bytes`; None = no padding, for exact tests)."""
        return self._respond(200, _with_padding(pack, rand_bytes), PACK_CONTENT_TYPE)

    def send_status(self, status: int) -> bytes:
        """A short error response (403/404 for a bad signature, 400)."""
        reason = _REASONS.get(status, "Error")
        return self._respond(status, f"{status} {reason}\r\n".encode(), "text/plain")

    def _respond(self, status: int, body: bytes, content_type: str) -> bytes:
        conn = self._conn
        head = h11.Response(status_code=status, reason=_REASONS.get(status, "Error").encode(),
                            headers=_headers([("Content-Type", content_type),
                                              ("Content-Length", str(len(body))), *_KEEP_ALIVE]))
        try:
            return conn.send(head) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError as e:
            raise ValueError(f"cannot respond now: {e}") from None

    @staticmethod
    def _request(head: h11.Request, body: bytes) -> HttpRequest:
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers)
        return HttpRequest(head.method.decode("latin-1"), head.target.decode("latin-1"), headers, body)


class PackClientChannel(_Channel[h11.Response]):
    """Client side: `signature_request()` -> `next_pack()` (hello) ->
    `send_pack(auth)` -> `next_pack()` (welcome/redirect/error) -> blocks."""

    def __init__(self, host: str, max_body: int = CLIENT_MAX_BODY) -> None:
        if not host:
            raise ValueError("host is required (the Host header)")
        super().__init__(h11.CLIENT, h11.Response)
        self._host = host
        self._max_body = max_body
        self._last_request: _RequestEvents = []
        self._awaiting_noop_reply = False

    def signature_request(self, body: bytes = SIGNATURE_BODY) -> bytes:
        """`POST /vpnsvc/connect.cgi` with `VPNCONNECT`, as our client sends."""
        return self._post(SIGNATURE_TARGET, SIGNATURE_CONTENT_TYPE, body)

    def send_pack(self, pack: Pack, rand_bytes: RandBytes | None = os.urandom) -> bytes:
        """Bytes of `POST /vpnsvc/vpn.cgi` carrying `pack` (+ `pencore`).

        A NOOP PACK (handshake.noop_pack) is fine: noop=2 expects no reply,
        and the reply to noop=1 is consumed by `next_pack()`.
        """
        kind = noop_kind(pack)
        out = self._post(PACK_TARGET, PACK_CONTENT_TYPE, _with_padding(pack, rand_bytes))
        self._awaiting_noop_reply = kind == NOOP_REPLY_WANTED
        if kind == NOOP_IGNORE:
            self._restart()  # no response will come; the next request may follow
        return out

    def next_pack(self) -> Pack | None:
        """The server's next PACK (unasked noop=2 skipped) or None.

        Raises HttpError (not 200, wrong type, bad length) or PackError.
        """
        while True:
            msg = self._next_message(self._max_body)
            if msg is None:
                return None
            head, body = msg
            if head.status_code != 200:
                raise HttpError(f"HTTP status {head.status_code}")
            ctype = next((v.decode("latin-1") for k, v in head.headers if k == b"content-type"), None)
            if not _is_pack_type(ctype):
                raise HttpError(f"Content-Type {ctype!r}")
            pack = Pack.decode(body, max_size=self._max_body)
            if not noop_kind(pack):
                return pack
            self._count_noop()
            if self._awaiting_noop_reply:  # the answer to our own NOOP
                self._awaiting_noop_reply = False
            else:  # unasked: the real response to our request is still to come
                self._restart(replay=self._last_request)

    def _post(self, target: str, content_type: str, body: bytes) -> bytes:
        conn = self._conn
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        events: _RequestEvents = [
            h11.Request(method=b"POST", target=target.encode(),
                        headers=_headers([("Host", self._host), ("Content-Type", content_type),
                                          ("Content-Length", str(len(body))), *_KEEP_ALIVE])),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ]
        try:
            out = b"".join(conn.send(ev) for ev in events)
        except h11.LocalProtocolError as e:
            raise ValueError(f"cannot send a request now: {e}") from None
        self._last_request = events
        return out
