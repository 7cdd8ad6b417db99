"""The PACK messages of the SE-VPN negotiation, as records (§3.2, §3.3, §5, §6.3).

After the signature POST (signature.py) the conversation is one PACK per
HTTP message (httpmsg.py):

    S->C Hello            hello, version, build, random[20]
    C->S AuthRequest      method=login, hubname, username, authtype + proof
    S->C Welcome          session parameters, session_key[20], policy:*
      or Redirect         cluster controller -> member (Ip, Port[], Ticket, Cert)
      or ErrorReply       error (+ no_save_password)
    C->S AdditionalConnectRequest / S->C AdditionalConnectReply  (more TCP sockets)

Each record is a frozen dataclass with `to_pack()` (the sender side) and
`from_pack()` (the receiver side). `from_pack` reads what the receiver
needs, ignores the rest, and raises `ProtocolError` for a message the
SoftEther peer would also refuse (e.g. a `random` or `session_key` that is
not exactly 20 bytes, a welcome with `timeout` 0). A server PACK whose INT
`error` is non-zero raises `ServerError` carrying that code, as
`GetErrorFromPack` does on the client.

NOOP (§3.1): a C->S PACK with non-zero INT `noop` is not a request. Like
SoftEther `master`, noop=2 is skipped silently and any other non-zero value
is answered with {error:0, noop:2}; at most 30 per connection
(MAX_NOOP_PER_SESSION). httpmsg's channels apply this.

Defaults follow the "simplest interoperable server" of §6.3: one TCP
connection, no QoS, no half-connection, encrypted data plane, timeout 20 s,
SoftEther's default policy plus policy:Ver3=1 (`PackAddPolicy`).
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from node.softether.errors import Err
from node.softether.pack import Pack, ValueType
from node.softether.protocol_error import ProtocolError

SHA1_SIZE = 20
MAX_NOOP_PER_SESSION = 30
MAX_REDIRECT_PORTS = 128
NOOP_REPLY_WANTED = 1
NOOP_IGNORE = 2

# PackAddPolicy's element names (without "policy:"), bools then ints.
POLICY_BOOLS = (
    "Access", "DHCPFilter", "DHCPNoServer", "DHCPForce", "NoBridge", "NoRouting",
    "PrivacyFilter", "NoServer", "CheckMac", "CheckIP", "ArpDhcpOnly", "MonitorPort",
    "NoBroadcastLimiter", "FixPassword", "NoQoS", "RSandRAFilter", "RAFilter",
    "DHCPv6Filter", "DHCPv6NoServer", "NoRoutingV6", "CheckIPv6", "NoServerV6",
    "NoSavePassword", "FilterIPv4", "FilterIPv6", "FilterNonIP",
    "NoIPv6DefaultRouterInRA", "NoIPv6DefaultRouterInRAWhenIPv6",
)
POLICY_INTS = (
    "MaxConnection", "TimeOut", "MaxMac", "MaxIP", "MaxUpload", "MaxDownload",
    "MultiLogins", "MaxIPv6", "AutoDisconnect", "VLanId",
)
DEFAULT_POLICY: Mapping[str, int] = MappingProxyType(
    {**{n: 0 for n in POLICY_BOOLS + POLICY_INTS}, "Access": 1, "MaxConnection": 32, "TimeOut": 20}
)


class AuthType(enum.IntEnum):
    """INT `authtype` of the login PACK."""

    ANONYMOUS = 0
    PASSWORD = 1
    PLAIN_PASSWORD = 2
    CERT = 3
    TICKET = 99


class Direction(enum.IntEnum):
    """INT `direction` of an additional connection (Cedar.h TCP_*)."""

    BOTH = 0
    SERVER_TO_CLIENT = 1
    CLIENT_TO_SERVER = 2


class ServerError(ProtocolError):
    """The server answered with a non-zero `error` (its code is `code`).

    Raised by the `from_pack` of every server->client record. For an
    additional connection, codes 13 and 14 mean the whole session is gone.
    """

    def __init__(self, code: int, no_save_password: bool = False) -> None:
        super().__init__("server reported an error", code)
        self.no_save_password = no_save_password


def check_error(p: Pack) -> None:
    """Raise ServerError if the PACK carries a non-zero INT `error`."""
    code = p.get_int("error")
    if code:
        raise ServerError(code, p.get_bool("no_save_password"))


def request_method(p: Pack) -> str:
    """The lower-cased `method` of a client PACK; ProtocolError if missing."""
    method = p.get_str("method")
    if not method:
        raise ProtocolError("client PACK has no method")
    return method.lower()


def _expect_method(p: Pack, method: str) -> None:
    if request_method(p) != method:
        raise ProtocolError(f"expected method {method!r}")


def _need_str(p: Pack, name: str, code: int = Err.PROTOCOL_ERROR) -> str:
    v = p.get_str(name)
    if v is None:
        raise ProtocolError(f"missing STR {name!r}", code)
    return v


def _need_20(p: Pack, name: str, code: int = Err.PROTOCOL_ERROR) -> bytes:
    v = p.get_data(name)
    if v is None or len(v) != SHA1_SIZE:
        raise ProtocolError(f"DATA {name!r} must be {SHA1_SIZE} bytes", code)
    return v


def _check_20(name: str, v: bytes) -> None:
    if len(v) != SHA1_SIZE:
        raise ValueError(f"{name} must be {SHA1_SIZE} bytes")


# ---- NOOP -------------------------------------------------------------------

def noop_kind(p: Pack) -> int:
    """0: not a NOOP; NOOP_IGNORE: skip it; NOOP_REPLY_WANTED: answer noop_pack()."""
    v = p.get_int("noop")
    if v == 0 or v == NOOP_IGNORE:
        return v
    return NOOP_REPLY_WANTED  # 5.01 treats any non-zero value as a request


def noop_pack(kind: int = NOOP_IGNORE) -> Pack:
    """A NOOP PACK: {error:0, noop:kind}. noop_pack() is also the reply."""
    p = Pack()
    p.add_int("error", 0)
    p.add_int("noop", kind)
    return p


# ---- hello ------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    """S->C hello: the 20-byte challenge and the server's product/version."""

    random: bytes
    hello: str = "vpncluster SoftEther-compatible VPN Server"
    version: int = 501
    build: int = 9674

    def to_pack(self) -> Pack:
        _check_20("random", self.random)
        p = Pack()  # sorted by name, as SoftEther sends it (and §2.3 shows)
        p.add_int("build", self.build)
        p.add_str("hello", self.hello)
        p.add_data("random", self.random)
        p.add_int("version", self.version)
        return p

    @classmethod
    def from_pack(cls, p: Pack) -> Hello:
        """Client side; ProtocolError(SERVER_IS_NOT_VPN) like GetHello."""
        check_error(p)
        return cls(
            hello=_need_str(p, "hello", Err.SERVER_IS_NOT_VPN),
            version=p.get_int("version"),
            build=p.get_int("build"),
            random=_need_20(p, "random", Err.SERVER_IS_NOT_VPN),
        )


# ---- login ------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class AuthRequest:
    """C->S login. The proof depends on `authtype`: `secure_password`
    (PASSWORD, SHA-0 of hashed key + random), `ticket` (TICKET),
    `plain_password` (PLAIN_PASSWORD), `cert` + `sign` (CERT). Fields are
    read as sent; the server checks sizes (a proof that is not 20 bytes
    fails authentication, as in SoftEther)."""

    hubname: str
    username: str
    authtype: int = AuthType.ANONYMOUS
    secure_password: bytes = b""
    ticket: bytes = b""
    plain_password: str = ""
    cert: bytes = b""
    sign: bytes = b""
    client_str: str = "vpncluster VPN Client"
    client_ver: int = 501
    client_build: int = 9674
    max_connection: int = 1
    use_encrypt: bool = True
    use_compress: bool = False
    half_connection: bool = False
    qos: bool = False  # SoftEther's client asks 1 by default; we need no QoS
    require_bridge_routing_mode: bool = False
    require_monitor_mode: bool = False
    unique_id: bytes = b""  # 20 bytes (machine hash) or empty
    client_hostname: str = ""
    client_os_name: str = ""

    @property
    def is_server_or_bridge(self) -> bool:
        """SoftEther puts such clients in bridge/routing mode."""
        s = self.client_str.lower()
        return "server" in s or "bridge" in s

    def to_pack(self) -> Pack:
        p = Pack()
        p.add_str("method", "login")
        p.add_str("hubname", self.hubname)
        p.add_str("username", self.username)
        p.add_int("authtype", int(self.authtype))
        if self.authtype == AuthType.PASSWORD:
            p.add_data("secure_password", self.secure_password)
        elif self.authtype == AuthType.TICKET:
            p.add_data("ticket", self.ticket)
        elif self.authtype == AuthType.PLAIN_PASSWORD:
            p.add_str("plain_password", self.plain_password)
        elif self.authtype == AuthType.CERT:
            p.add_data("cert", self.cert)
            p.add_data("sign", self.sign)
        p.add_str("client_str", self.client_str)
        p.add_int("client_ver", self.client_ver)
        p.add_int("client_build", self.client_build)
        p.add_str("hello", self.client_str)
        p.add_int("version", self.client_ver)
        p.add_int("build", self.client_build)
        p.add_int("protocol", 0)  # TCP
        p.add_int("client_id", 0)
        p.add_int("max_connection", self.max_connection)
        p.add_int("use_encrypt", int(self.use_encrypt))
        p.add_int("use_compress", int(self.use_compress))
        p.add_int("half_connection", int(self.half_connection))
        p.add_bool("require_bridge_routing_mode", self.require_bridge_routing_mode)
        p.add_bool("require_monitor_mode", self.require_monitor_mode)
        p.add_bool("qos", self.qos)
        if self.unique_id:
            p.add_data("unique_id", self.unique_id)
        if self.client_hostname:
            p.add_str("ClientHostname", self.client_hostname)
        if self.client_os_name:
            p.add_str("ClientOsName", self.client_os_name)
        return p

    @classmethod
    def from_pack(cls, p: Pack) -> AuthRequest:
        """Server side; ProtocolError if method is not login or hub/user is missing."""
        _expect_method(p, "login")
        unique_id = p.get_data("unique_id") or b""
        return cls(
            hubname=_need_str(p, "hubname"),
            username=_need_str(p, "username"),
            authtype=p.get_int("authtype"),
            secure_password=p.get_data("secure_password") or b"",
            ticket=p.get_data("ticket") or b"",
            plain_password=p.get_str("plain_password") or "",
            cert=p.get_data("cert") or b"",
            sign=p.get_data("sign") or b"",
            # the server prefers `hello` for the client's product string
            client_str=p.get_str("hello") or p.get_str("client_str") or "Unknown",
            client_ver=p.get_int("client_ver"),
            client_build=p.get_int("client_build"),
            max_connection=p.get_int("max_connection"),
            use_encrypt=p.get_bool("use_encrypt"),
            use_compress=p.get_bool("use_compress"),
            half_connection=p.get_bool("half_connection"),
            qos=p.get_bool("qos"),
            require_bridge_routing_mode=p.get_bool("require_bridge_routing_mode"),
            require_monitor_mode=p.get_bool("require_monitor_mode"),
            unique_id=unique_id if len(unique_id) == SHA1_SIZE else b"",
            client_hostname=p.get_str("ClientHostname") or "",
            client_os_name=p.get_str("ClientOsName") or "",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Welcome:
    """S->C welcome: the session exists; the data plane starts right after."""

    session_name: str
    connection_name: str
    session_key: bytes
    session_key_32: int = 0
    max_connection: int = 1
    use_encrypt: bool = True  # 0 would move the data plane to raw TCP
    use_compress: bool = False
    half_connection: bool = False
    timeout_ms: int = 20_000  # must be non-zero: the client divides by it
    qos: bool = False  # 1 makes the client open >= 2 TCP connections
    vlan_id: int = 0
    msg: str = ""
    policy: Mapping[str, int] = field(default_factory=lambda: DEFAULT_POLICY)

    def to_pack(self) -> Pack:
        _check_20("session_key", self.session_key)
        if self.timeout_ms <= 0:
            raise ValueError("welcome timeout must be positive")
        p = Pack()
        p.add_str("session_name", self.session_name)
        p.add_str("connection_name", self.connection_name)
        p.add_int("max_connection", self.max_connection)
        p.add_int("use_encrypt", int(self.use_encrypt))
        p.add_int("use_compress", int(self.use_compress))
        p.add_int("half_connection", int(self.half_connection))
        p.add_int("timeout", self.timeout_ms)
        p.add_int("qos", int(self.qos))
        p.add_int("is_azure_session", 0)
        p.add_data("session_key", self.session_key)
        p.add_int("session_key_32", self.session_key_32)
        for name, value in self.policy.items():
            if name != "Ver3":
                p.add_int("policy:" + name, value)
        p.add_bool("policy:Ver3", True)
        p.add_int("vlan_id", self.vlan_id)
        p.add_bool("enable_udp_recovery", False)
        if self.msg:
            p.add_data("Msg", self.msg.encode("utf-8"))
        return p

    @classmethod
    def from_pack(cls, p: Pack) -> Welcome:
        """Client side; ServerError for `error`, ProtocolError for a welcome
        the client could not use (names, 20-byte key, non-zero timeout)."""
        check_error(p)
        timeout = p.get_int("timeout")
        if timeout == 0:
            raise ProtocolError("welcome has no INT timeout")
        policy = {e.name[len("policy:"):]: e.values[0] for e in p
                  if e.type is ValueType.INT and e.name.lower().startswith("policy:")}
        return cls(
            session_name=_need_str(p, "session_name"),
            connection_name=_need_str(p, "connection_name"),
            session_key=_need_20(p, "session_key"),
            session_key_32=p.get_int("session_key_32"),
            max_connection=p.get_int("max_connection"),
            use_encrypt=p.get_bool("use_encrypt"),
            use_compress=p.get_bool("use_compress"),
            half_connection=p.get_bool("half_connection"),
            timeout_ms=timeout,
            qos=p.get_bool("qos"),
            vlan_id=p.get_int("vlan_id"),
            msg=(p.get_data("Msg") or b"").decode("utf-8", "replace"),
            policy=MappingProxyType(policy),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Redirect:
    """S->C redirect (cluster controller): log in again at `ip`:port with `ticket`."""

    ip: ipaddress.IPv4Address
    ports: tuple[int, ...]
    ticket: bytes
    cert: bytes  # the member's TLS certificate, DER; the client pins it
    msg: str = ""

    def choose_port(self, current_port: int) -> int:
        """The client keeps its current port if the member listens on it."""
        return current_port if current_port in self.ports else self.ports[0]

    def to_pack(self) -> Pack:
        _check_20("ticket", self.ticket)
        if not 1 <= len(self.ports) <= MAX_REDIRECT_PORTS:
            raise ValueError("redirect needs 1..128 ports")
        p = Pack()
        p.add_int("Redirect", 1)
        p.add_ip("Ip", ipaddress.IPv4Address(self.ip))
        p.add_ints("Port", self.ports)
        p.add_data("Ticket", self.ticket)
        p.add_data("Msg", self.msg.encode("utf-8"))
        p.add_data("Cert", self.cert)
        return p

    @classmethod
    def from_pack(cls, p: Pack) -> Redirect:
        """Client side; ProtocolError for a redirect without IPv4, ports or a 20-byte ticket."""
        check_error(p)
        ip = p.get_ip("Ip")
        ports = p.get_ints("Port")[:MAX_REDIRECT_PORTS]
        if not isinstance(ip, ipaddress.IPv4Address) or not ports:
            raise ProtocolError("redirect without an IPv4 address and ports")
        return cls(
            ip=ip, ports=ports, ticket=_need_20(p, "Ticket"),
            cert=p.get_data("Cert") or b"",
            msg=(p.get_data("Msg") or b"").decode("utf-8", "replace"),
        )


def parse_login_reply(p: Pack) -> Welcome | Redirect:
    """Client side: the PACK after the auth request is a redirect or a welcome.

    Raises ServerError (login refused) or ProtocolError (unusable reply).
    """
    check_error(p)
    return Redirect.from_pack(p) if p.get_int("Redirect") else Welcome.from_pack(p)


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorReply:
    """S->C refusal: INT `error` and bool `no_save_password` (PackError).
    ErrorReply(code=0) is also the "all done" PACK after a redirect."""

    code: int
    no_save_password: bool = False

    def to_pack(self) -> Pack:
        p = Pack()
        p.add_int("error", int(self.code))
        p.add_bool("no_save_password", self.no_save_password)
        return p

    @classmethod
    def from_pack(cls, p: Pack) -> ErrorReply:
        return cls(code=p.get_int("error"), no_save_password=p.get_bool("no_save_password"))


# ---- additional connections --------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class AdditionalConnectRequest:
    """C->S: join the session with this key as one more TCP connection."""

    session_key: bytes
    client_str: str = "vpncluster VPN Client"
    client_ver: int = 501
    client_build: int = 9674

    def to_pack(self) -> Pack:
        _check_20("session_key", self.session_key)
        p = Pack()
        p.add_str("method", "additional_connect")
        p.add_data("session_key", self.session_key)
        p.add_str("client_str", self.client_str)
        p.add_int("client_ver", self.client_ver)
        p.add_int("client_build", self.client_build)
        return p

    @classmethod
    def from_pack(cls, p: Pack) -> AdditionalConnectRequest:
        """Server side; ProtocolError (ERR_PROTOCOL_ERROR) without a 20-byte key."""
        _expect_method(p, "additional_connect")
        return cls(
            session_key=_need_20(p, "session_key"),
            client_str=p.get_str("client_str") or "",
            client_ver=p.get_int("client_ver"),
            client_build=p.get_int("client_build"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AdditionalConnectReply:
    """S->C success: {error:0, direction}. Refuse with ErrorReply; prefer
    ERR_TOO_MANY_CONNECTION (15): 13/14 make the client drop the session."""

    direction: int = Direction.BOTH

    def to_pack(self) -> Pack:
        p = Pack()
        p.add_int("error", 0)
        p.add_int("direction", int(self.direction))
        return p

    @classmethod
    def from_pack(cls, p: Pack) -> AdditionalConnectReply:
        check_error(p)
        return cls(direction=p.get_int("direction"))
