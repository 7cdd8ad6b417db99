"""SoftEther's binary admin RPC (what vpncmd and the Server Manager speak), sans-IO.

The conversation (softether-protocol.md §8.6; Admin.c AdminAccept,
AdminConnectMain, AdminCheckPassword; Remote.c RpcServer):

1. TLS, the signature POST and the hello with its 20-byte `random`, as for
   a VPN login (node/dataplane/vpn_handler.py).
2. One HTTP PACK with `method`=`admin`: `secure_password` DATA[20] =
   SHA0(SHA0(admin password) || random), optional `hubname` STR (hub admin
   mode), `accept_empty_password`, the client's version fields.
   `check_login` decides, in SoftEther's order: a `secure_password` that is
   not 20 bytes → ERR_PROTOCOL_ERROR; hub admin mode on a cluster member →
   ERR_NOT_ENOUGH_RIGHT; unknown hub → ERR_HUB_NOT_FOUND; wrong password →
   ERR_ACCESS_DENIED (vpncmd then asks for the password again). One
   difference, as our JSON-RPC API (node/admin/auth.py): a hub without an
   administrator password admits no hub administrator (SoftEther admits
   the empty password from 127.x): ERR_NULL_PASSWORD_LOCAL_ONLY from other
   addresses, as SoftEther, and ERR_ACCESS_DENIED from loopback. vpnd
   never runs with an empty server password, so the `empty_password` reply
   flag is never set.
3. The answer is one HTTP PACK, empty on success or with `error`; after a
   success no more HTTP: each call is `u32 length (big-endian) + PACK`
   carrying STR `function_name`, each reply is framed the same way, with
   INT `error` on failure and the method's output fields otherwise
   (`reply_pack`). An unknown method answers ERR_NOT_SUPPORTED, as
   AdminDispatch does, and the connection goes on.

Limits, as the JSON-RPC API: a frame longer than ADMIN_FRAME_LIMIT (4 MiB,
the JSON-RPC admin body limit) or a PACK that does not parse is a
`FrameError`; the edge closes that one connection (SoftEther's
RpcRecvNextCall does the same). `FrameReader` holds at most one frame, so an
idle connection costs a few bytes.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass
from typing import Any, Mapping

from node.admin.pack_json import pack_to_params, result_to_pack
from node.softether.errors import Err
from node.softether.pack import Pack, PackError
from node.softether.protocol_error import ProtocolError
from node.softether.handshake import SHA1_SIZE
from node.softether.sha0 import EMPTY_PASSWORD_HASH, secure_password
from node.state.model import SERVER_MEMBER, Server

ADMIN_FRAME_LIMIT = 4 * 1024 * 1024
_LENGTH = struct.Struct(">I")


class FrameError(ProtocolError):
    """An admin RPC frame cannot be read (oversized length, bad PACK).
    Raised by `FrameReader`; close that connection."""


class AdminLoginRefused(Exception):
    """The admin login is refused; answer `code` and close."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = int(code)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AdminLogin:
    """What the `admin` PACK asks for."""

    hubname: str
    """"" = server administrator, else hub administrator mode for that hub."""
    secure_password: bytes
    """SHA0(SHA0(password) || random), 20 bytes."""


def parse_login(pack: Pack) -> AdminLogin:
    """The `admin` request; FrameError(ERR_PROTOCOL_ERROR) without a 20-byte proof."""
    proof = pack.get_data("secure_password")
    if proof is None or len(proof) != SHA1_SIZE:
        raise FrameError("admin login without a 20-byte secure_password", Err.PROTOCOL_ERROR)
    return AdminLogin(hubname=(pack.get_str("hubname") or "").strip(), secure_password=proof)


def check_login(config: Server, login: AdminLogin, random: bytes, *, client_is_local: bool) -> str | None:
    """None for the server administrator, the hub's name for its administrator;
    AdminLoginRefused with SoftEther's error otherwise (module doc, step 2)."""
    if not login.hubname:
        if hmac.compare_digest(secure_password(config.admin_password_hash, random), login.secure_password):
            return None
        raise AdminLoginRefused(Err.ACCESS_DENIED, "wrong server administrator password")
    if config.farm.server_type == SERVER_MEMBER:
        raise AdminLoginRefused(Err.NOT_ENOUGH_RIGHT,
                                "hub administrators log in on the cluster controller, not on a member")
    hub = config.find_hub(login.hubname)
    if hub is None:
        raise AdminLoginRefused(Err.HUB_NOT_FOUND, f"no hub {login.hubname!r}")
    stored = hub.hashed_password or EMPTY_PASSWORD_HASH
    if stored == EMPTY_PASSWORD_HASH:
        code = Err.ACCESS_DENIED if client_is_local else Err.NULL_PASSWORD_LOCAL_ONLY
        raise AdminLoginRefused(code, f"hub {hub.name!r} has no administrator password")
    if hmac.compare_digest(secure_password(stored, random), login.secure_password):
        return hub.name
    raise AdminLoginRefused(Err.ACCESS_DENIED, f"wrong administrator password for hub {hub.name!r}")


@dataclass(frozen=True, slots=True)
class AdminCall:
    """One decoded call: the method name and its params under JSON names."""

    method: str
    params: dict[str, Any]


class FrameReader:
    """Bytes in, `AdminCall`s out. Holds at most one frame (≤ 4 MiB + 4)."""

    def __init__(self, limit: int = ADMIN_FRAME_LIMIT) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._need: int | None = None  # length of the frame being read

    @property
    def mid_frame(self) -> bool:
        """True while part of a frame has arrived (the edge then bounds the wait)."""
        return bool(self._buf)

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def next_call(self) -> AdminCall | None:
        """The next complete call, None if more bytes are needed; FrameError
        on an oversized length or an unreadable PACK."""
        if self._need is None:
            if len(self._buf) < _LENGTH.size:
                return None
            (self._need,) = _LENGTH.unpack_from(self._buf)
            if self._need > self.limit:
                raise FrameError(f"admin RPC frame of {self._need} bytes exceeds {self.limit}")
            del self._buf[:_LENGTH.size]
        if len(self._buf) < self._need:
            return None
        body = bytes(self._buf[:self._need])
        del self._buf[:self._need]
        self._need = None
        try:
            pack = Pack.decode(body)
        except PackError as e:
            raise FrameError(f"unreadable admin RPC PACK: {e.message}") from None
        # no function_name: "" names no method, so ERR_NOT_SUPPORTED (RpcRecvNextCall does the same)
        return AdminCall(method=pack.get_str("function_name") or "", params=pack_to_params(pack))


def frame(pack: Pack) -> bytes:
    """One reply (or call) on the wire: u32 length + PACK."""
    body = pack.encode()
    return _LENGTH.pack(len(body)) + body


def reply_pack(result: Mapping[str, Any]) -> Pack:
    """A successful call's reply: the method's output fields (JsonPackError
    if a handler produced a value that does not fit its suffix)."""
    return result_to_pack(result)


def error_pack(code: int) -> Pack:
    """A failed call's reply: INT `error` only (AdminDispatch)."""
    p = Pack()
    p.add_int("error", int(code))
    return p
