"""The server side of the SE-VPN negotiation: signature, hello, login, welcome;
then the connection becomes a `VpnSession` (session.py).

The listener (node/listener.py) hands over a connection whose first request
was `POST /vpnsvc/connect.cgi`; `VpnHandler.__call__` owns it from then on.
One `PackServerChannel` (node/softether/httpmsg.py) runs the whole exchange:
the signature request the listener already parsed is replayed into it (with
the bytes the listener had buffered after it), so SoftEther's signature rule,
the PACK rules and NOOPs live in one h11 state machine (softether-protocol.md
§3.1-§3.3, Protocol.c ServerAccept):

    signature   403 (bad body) / 404 (bad target), up to 19 attempts; a bad
                length gets 403 and the connection ends
    hello       20 random bytes (the challenge)
    PACK        method=login            -> authenticate() -> Welcome or ErrorReply
                method=additional_connect -> ErrorReply(ERR_TOO_MANY_CONNECTION)
                method=enum_hub         -> HubName[] / NumHub (hubs without NoEnum)
                method=admin            -> the binary admin RPC (node/admin/binary_api.py)
                anything else           -> ErrorReply(ERR_PROTOCOL_ERROR)

Before its signature, the real 5.01 client probes a server that is not one
of its own addresses with `GET /` (header `X-VPN: 1`, Mayaqua/Network.c
DetectIsServerSoftEtherVPN) on the same TLS connection, and gives up (error
1) unless the answer has a status line of three tokens (`HTTP/1.1 200 OK`)
and a body containing 9C37197CA7C2428388C2E6E59B829B30; that request is
the listener's to answer, this handler only sees the POST that follows.

Every step has a time limit (STEP_TIMEOUT_S = 15 s, SoftEther's
CONNECTING_TIMEOUT), so a slow or silent client cannot hold a connection,
and the whole negotiation (signature attempts, hello, login) one more
(NEGOTIATION_TIMEOUT_S = 30 s) that retrying bad signatures cannot extend.
The connection counts as a VPN session for the listener's connection caps
only once its login succeeded (`on_session`).
Failed logins feed the per-address backoff (vpnbus/auth_backoff.py): an
address that failed too often is refused with ERR_AUTH_FAILED without a
check until its wait is over, and failures are logged in summary.
After an error reply the server reads at most one more PACK (SoftEther's
epilogue; the client usually just closes), then closes.

On a cluster controller an authenticated login is placed by the controller
core (node/cluster/controller_role.place_login): kept here, or redirected
(§5.1: the chosen member acknowledged a one-time ticket; the Redirect PACK
names its public address, ports and certificate; the client answers with
one PACK, gets error 0 and logs in at the member with the ticket), or
refused with SoftEther's error (ERR_COULD_NOT_HOST_HUB_ON_FARM when no
server may take it).

Login checks, in SoftEther's order (`authenticate`, a pure function): on a
cluster member only ticket and hub-administrator logins (ERR_ACCESS_DENIED);
hub exists (ERR_HUB_NOT_FOUND 8); hub online and running here
(ERR_HUB_STOPPING 10); an anonymous user (auth type 0) is let in whatever the
requested method; else by `authtype`: 1 password = SHA0(hashed key || random),
where user `administrator` is checked against the hub's admin password
(SHA0(pw || "ADMINISTRATOR")); 2 plain password is hashed the same way
(user name and password at most 255 characters, SoftEther's limits);
proofs are compared in constant time; 99 ticket: redeemed from the tickets
the controller asked this member to store (single use, bound to the hub,
60 s; else ERR_AUTH_FAILED), the session named as the controller said; 3
certificate and unknown types get ERR_AUTHTYPE_NOT_SUPPORTED (7), as
SoftEther's open-source build without certificate auth. Failure is
ERR_AUTH_FAILED (9). An empty administrator password is refused from
non-loopback addresses (ERR_NULL_PASSWORD_LOCAL_ONLY 51); an expired user gets
ERR_ACCESS_DENIED (12); a full hub (MaxSession) ERR_HUB_IS_BUSY (16).

Session timeout (decision): the welcome's `timeout` T sets both sides'
keep-alive (every T/5..T/2) and how long silence is tolerated. A standalone
node gives SoftEther's 20 s. A cluster node gives 5 s (CLUSTER_TIMEOUT_MS):
a client whose member froze or lost its link notices within 5 s and
reconnects through the controller, which has evicted that member by then
(3 s), instead of after 20 s; keep-alives every 1-2.5 s cost nothing
against a VPN session's traffic. (A killed member's sockets are reset by
its kernel, so its clients notice at once.)

Additional connections and half-connection (decision): a session here is
exactly one TCP connection. The welcome says max_connection=1, qos=0,
half_connection=0 (§6.3 "simplest interoperable server"); the client's wishes
for more connections, QoS and half-connection are not granted. With
max_connection=1 the real 5.01 client opens no extra connection while its
session is up; it does send `additional_connect` with the old session key
once its only socket was lost (it tries to re-add a socket until its 20 s
session timeout). For a session that is still alive here the answer is
ERR_TOO_MANY_CONNECTION (15), which drops only that socket on the client.
A lost socket ends the session on our side at once, so usually the key is
unknown: then, as SoftEther, the answer is ERR_SESSION_TIMEOUT (13), which
makes the client start over at once (measured with the Debian client after a
DeleteSession: ~6.5 s with a 5 s retry interval, against ~25 s when it had
to wait for its own 20 s timeout). Compression is granted when asked
(blocks.py codes both directions), encryption is always on (use_encrypt=1).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import ipaddress
import itertools
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Container, TypeVar

import h11

from controller.core_io import LoginFailed, LoginRequest, RedirectTo
from controller.errors import TicketError
from controller.tickets import TicketBook
from node import connections
from node.admin.binary_api import serve_binary_admin
from node.cluster.errors_map import error_number
from node.dataplane.session import DEFAULT_TIMEOUT_MS, VpnSession
from node.server import COMPAT_BUILD, COMPAT_VERSION, PRODUCT_NAME
from node.softether.errors import Err, error_name
from node.softether.handshake import (
    SHA1_SIZE, AdditionalConnectRequest, AuthRequest, AuthType, ErrorReply, Hello, Redirect, Welcome,
    request_method,
)
from node.softether.httpmsg import PackServerChannel
from node.softether.pack import Pack
from node.softether.protocol_error import ProtocolError
from node.softether.sha0 import hash_password, secure_password
from node.softether.signature import MAX_SIGNATURE_REQUESTS, SignatureError
from node.state import model

if TYPE_CHECKING:
    from node.listener import HttpRequest
    from node.server import VpnServer

log = logging.getLogger("vpnd.vpn")

STEP_TIMEOUT_S = 15.0          # per negotiation step (CONNECTING_TIMEOUT)
NEGOTIATION_TIMEOUT_S = 30.0   # signature to welcome, in all (module prose)
CLUSTER_TIMEOUT_MS = 5_000     # the welcome's session timeout on cluster nodes (module prose)
EPILOGUE_TIMEOUT_S = 3.0       # waiting for the client's last PACK after an error
READ_CHUNK = 64 * 1024
ADMINISTRATOR = "administrator"
MAX_NAME_LEN = 255             # MAX_USERNAME_LEN and MAX_PASSWORD_LEN (Cedar.h)
T = TypeVar("T")
_CONNECTION_TYPES = {"login": connections.TYPE_LOGIN, "additional_connect": connections.TYPE_ADDITIONAL,
                     "enum_hub": connections.TYPE_ENUM_HUB, "admin": connections.TYPE_ADMIN_RPC}
"""The CONNECTION_TYPE_* SoftEther's Protocol.c gives a connection by its request."""


class LoginRefused(Exception):
    """A login is refused: answer `ErrorReply(code)`; `reason` is for the log
    only (the client learns just the code)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LoginGranted:
    """A login `authenticate` accepted."""

    hub: model.Hub
    username: str                 # as the client sent it (the session name uses it)
    method: str                   # "anonymous", "password", "administrator", "ticket"
    real_username: str = ""       # the user object that authenticated it
    session_name: str = ""        # a ticket login: the name the controller gave the session


def _check_secure(hashed_key: bytes, random: bytes, proof: bytes) -> bool:
    # constant time: the proof must not leak, byte by byte, how much of it was right
    return len(hashed_key) == SHA1_SIZE and hmac.compare_digest(secure_password(hashed_key, random), proof)


def authenticate(config: model.Server, auth: AuthRequest, random: bytes, *, running: Container[str],
                 now_wall: float, client_is_local: bool, tickets: TicketBook | None = None,
                 now: float = 0.0) -> LoginGranted:
    """Check a login as SoftEther's ServerAccept does (order in the module
    prose). `running`: lower-case names of the hubs that may take it here;
    `tickets`: the tickets this member stores (redeemed at monotonic `now`).
    Returns LoginGranted or raises LoginRefused."""
    name = auth.username
    is_admin = name.lower() == ADMINISTRATOR
    if config.farm.server_type == model.SERVER_MEMBER and not (
            auth.authtype == AuthType.TICKET or (is_admin and auth.authtype == AuthType.PASSWORD)):
        raise LoginRefused(Err.ACCESS_DENIED, "a cluster member takes only ticket and administrator logins")
    hub = config.find_hub(auth.hubname)
    if hub is None or (config.farm.server_type == model.SERVER_MEMBER and hub.name.lower() not in running):
        # A member has only the hubs placed on it (SoftEther: a dynamic hub elsewhere does not exist here).
        raise LoginRefused(Err.HUB_NOT_FOUND, "no such hub here")
    if not hub.online or hub.name.lower() not in running:
        raise LoginRefused(Err.HUB_STOPPING, "the hub is offline")
    user = None if is_admin else hub.find_user(name)
    if user is not None and user.auth_type == model.AUTH_ANONYMOUS:
        return _granted(hub, user, name, "anonymous", now_wall)
    authtype = auth.authtype
    if authtype == AuthType.ANONYMOUS:
        raise LoginRefused(Err.AUTH_FAILED, "no such user" if user is None and not is_admin
                           else "anonymous login is not allowed for this user")
    if authtype == AuthType.PLAIN_PASSWORD:  # SoftEther hashes it and goes on as a password login
        if len(name) > MAX_NAME_LEN or len(auth.plain_password) > MAX_NAME_LEN:
            # SoftEther keeps 255 bytes of each; hashing 64 KiB in pure Python costs ~0.1 s of the loop
            raise LoginRefused(Err.AUTH_FAILED, "user name or plain password longer than 255 characters")
        proof = secure_password(hash_password(name, auth.plain_password), random)
    elif authtype == AuthType.PASSWORD:
        proof = auth.secure_password
    elif authtype == AuthType.TICKET:
        if tickets is None:
            raise LoginRefused(Err.AUTH_FAILED, "ticket login, but this node stores no tickets")
        try:
            grant = tickets.redeem(auth.ticket, hub.name, now)
        except TicketError as exc:
            raise LoginRefused(Err.AUTH_FAILED, f"ticket refused: {exc}") from None
        return LoginGranted(hub, grant.user_name, "ticket", grant.real_user_name, grant.session_name)
    else:
        raise LoginRefused(Err.AUTHTYPE_NOT_SUPPORTED, f"authentication type {authtype} is not supported")
    if len(proof) != SHA1_SIZE:
        raise LoginRefused(Err.AUTH_FAILED, "malformed password proof")
    if is_admin:
        if not _check_secure(hub.secure_password, random, proof):
            raise LoginRefused(Err.AUTH_FAILED, "wrong hub administrator password")
        if not client_is_local and proof == secure_password(hash_password(name, ""), random):
            raise LoginRefused(Err.NULL_PASSWORD_LOCAL_ONLY,
                               "the hub administrator password is empty (allowed from localhost only)")
        return LoginGranted(hub, name, "administrator", ADMINISTRATOR)
    if user is None:
        raise LoginRefused(Err.AUTH_FAILED, "no such user")
    if user.auth_type != model.AUTH_PASSWORD:
        raise LoginRefused(Err.AUTH_FAILED, f"the user does not use password authentication "
                                            f"(auth type {user.auth_type})")
    if not _check_secure(user.hashed_key, random, proof):
        raise LoginRefused(Err.AUTH_FAILED, "wrong password")
    return _granted(hub, user, name, "password", now_wall)


def _granted(hub: model.Hub, user: model.User, name: str, method: str, now_wall: float) -> LoginGranted:
    if user.expire_time and user.expire_time <= now_wall:
        raise LoginRefused(Err.ACCESS_DENIED, "the user account has expired")
    return LoginGranted(hub, name, method, user.name)


def enum_hub_pack(config: model.Server) -> Pack:
    """The `enum_hub` reply: hub names without NoEnum."""
    names = [hub.name for hub in config.hubs if not hub.no_enum]
    p = Pack()
    if names:  # a PACK element needs at least one value
        p.add_strs("HubName", names)
    p.add_int("NumHub", len(names))
    return p


def _replayed_signature(request: "HttpRequest") -> bytes:
    """The listener's parsed request as bytes again, for the channel to check."""
    host = request.headers.get("host") or "-"
    head = (f"{request.method} {request.target} HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Length: {len(request.body)}\r\n\r\n")
    return head.encode("latin-1", "replace") + request.body


def _client_address(writer: asyncio.StreamWriter, peer: str) -> tuple[str, int]:
    peername = writer.get_extra_info("peername")
    if not peername:
        host, _, port = peer.rpartition(":")
        return host, int(port) if port.isdigit() else 0
    addr = ipaddress.ip_address(peername[0].split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return str(addr), int(peername[1])


class _Negotiation:
    """One connection's negotiation: the channel plus its socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.channel = PackServerChannel()
        self.reader = reader
        self.writer = writer

    async def next(self, pull: Callable[[], T | None], timeout_s: float = STEP_TIMEOUT_S) -> T:
        """Read until `pull()` returns a message; TimeoutError after `timeout_s`.
        Raises what the channel raises (ProtocolError subclasses)."""
        async with asyncio.timeout(timeout_s):
            while True:
                found = pull()
                self._flush()
                if found is not None:
                    return found
                self.channel.receive_data(await self.reader.read(READ_CHUNK))

    def send(self, pack: Pack) -> None:
        self.writer.write(self.channel.send_pack(pack))

    def refuse(self, code: int) -> bool:
        """Send ErrorReply(code) if HTTP still allows a response; True if sent."""
        try:
            self.send(ErrorReply(code=code).to_pack())
        except ValueError:
            return False
        return True

    async def epilogue(self) -> None:
        """After a final reply: wait (bounded) for the client's last PACK or
        its close, as SoftEther does, so the reply is not cut by a reset."""
        try:
            await self.writer.drain()
            await self.next(self.channel.next_pack, EPILOGUE_TIMEOUT_S)
        except (ProtocolError, TimeoutError, ConnectionError, OSError):
            pass

    def _flush(self) -> None:
        extra = self.channel.data_to_send()  # NOOP replies
        if extra:
            self.writer.write(extra)


@dataclass(frozen=True, slots=True)
class _AdminRpc:
    """The negotiation asked for the `admin` method: its login request and our hello's random."""

    request: Pack
    random: bytes


class VpnHandler:
    """The listener's `vpn_handler`: `await handler(conn, request, reader,
    writer, peer)` runs the negotiation and then the session, and returns
    when the connection is done."""

    def __init__(self, server: "VpnServer", *, timeout_ms: int = DEFAULT_TIMEOUT_MS,
                 cluster_timeout_ms: int = CLUSTER_TIMEOUT_MS, step_timeout_s: float = STEP_TIMEOUT_S,
                 negotiation_timeout_s: float = NEGOTIATION_TIMEOUT_S) -> None:
        self.server = server
        self.timeout_ms = timeout_ms
        self.cluster_timeout_ms = cluster_timeout_ms
        self.step_timeout_s = step_timeout_s
        self.negotiation_timeout_s = negotiation_timeout_s
        self._connection_ids = itertools.count(1)

    async def __call__(self, conn: h11.Connection, request: "HttpRequest",
                       reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str,
                       on_session: Callable[[], None] = lambda: None) -> None:
        neg = _Negotiation(reader, writer)
        neg.channel.receive_data(_replayed_signature(request))
        rest, closed = conn.trailing_data
        if rest:
            neg.channel.receive_data(rest)
        if closed:
            neg.channel.receive_data(b"")
        client_ip, client_port = _client_address(writer, peer)
        session: VpnSession | _AdminRpc | None = None
        try:
            async with asyncio.timeout(self.negotiation_timeout_s):
                session = await self._negotiate(neg, client_ip, client_port, peer)
        except TimeoutError:
            log.info("VPN negotiation with %s timed out (%g s per step, %g s in all)", peer,
                     self.step_timeout_s, self.negotiation_timeout_s)
        except ProtocolError as e:
            log.info("VPN negotiation with %s failed: %s", peer, e)
        if isinstance(session, _AdminRpc):
            # vpncmd's binary admin RPC (node/admin/binary_api.py): a connection that lives
            # past the negotiation's deadline, with limits of its own; established once logged in
            await serve_binary_admin(self.server, neg, session.request, session.random, peer_name=peer,
                                     client_is_local=ipaddress.ip_address(client_ip).is_loopback,
                                     on_login=on_session)
        elif session is not None:
            on_session()
            await session.run(neg.channel.trailing_data)

    async def _negotiate(self, neg: _Negotiation, client_ip: str, client_port: int,
                         peer: str) -> VpnSession | _AdminRpc | None:
        """Signature, hello and one request; the session to run after a
        successful login, the admin RPC to serve, else None (the reply was sent)."""
        if not await self._signature(neg, peer):
            return None
        random = os.urandom(SHA1_SIZE)
        neg.send(Hello(random=random, hello=PRODUCT_NAME, version=COMPAT_VERSION,
                       build=COMPAT_BUILD).to_pack())
        try:
            pack = await neg.next(neg.channel.next_pack, self.step_timeout_s)
            method = request_method(pack)
        except ProtocolError as e:
            log.info("VPN negotiation with %s failed: %s", peer, e)
            if neg.refuse(e.code):
                await neg.epilogue()
            return None
        tag = _CONNECTION_TYPES.get(method)
        if tag is not None:   # what EnumConnection says this connection is (node/connections.py)
            self.server.connections.set_type(neg.writer, tag)
        if method == "login":
            return await self._login(neg, pack, random, client_ip, client_port, peer)
        elif method == "additional_connect":
            self._additional_connect(neg, pack, peer)
            await neg.epilogue()
        elif method == "enum_hub":
            neg.send(enum_hub_pack(self.server.state.config))
            await neg.epilogue()
        elif method == "admin":
            return _AdminRpc(pack, random)
        else:
            log.info("VPN client %s asked for unknown method %.64r", peer, method)
            neg.refuse(Err.PROTOCOL_ERROR)
            await neg.epilogue()
        return None

    async def _signature(self, neg: _Negotiation, peer: str) -> bool:
        for _ in range(MAX_SIGNATURE_REQUESTS):
            try:
                await neg.next(neg.channel.next_signature, self.step_timeout_s)
                return True
            except SignatureError as e:
                log.info("bad VPN signature from %s: %s (HTTP %d)", peer, e, e.http_status)
                neg.writer.write(neg.channel.send_status(e.http_status))
                if e.fatal:
                    await neg.writer.drain()
                    return False
        return False

    async def _redirect(self, neg: _Negotiation, to: RedirectTo, granted: LoginGranted, client_ip: str) -> None:
        """SoftEther's redirect (§5.1): the member holds the ticket; the client
        sends one (empty) PACK back, gets error 0 and logs in there."""
        neg.send(Redirect(ip=ipaddress.IPv4Address(to.ip), ports=to.ports, ticket=to.ticket,
                          cert=to.cert).to_pack())
        log.info("login of user %s (%s) on hub %s from %s redirected to member %d (%s:%s)", granted.username,
                 granted.method, granted.hub.name, client_ip, to.member_id, to.ip, to.ports[0])
        try:
            await neg.next(neg.channel.next_pack, EPILOGUE_TIMEOUT_S)
            neg.send(ErrorReply(code=0).to_pack())
            await neg.writer.drain()
        except (ProtocolError, TimeoutError, ConnectionError, OSError, ValueError):
            pass  # the client already went on to the member

    def _additional_connect(self, neg: _Negotiation, pack: Pack, peer: str) -> None:
        try:
            request = AdditionalConnectRequest.from_pack(pack)
        except ProtocolError as e:
            log.info("additional connection from %s refused: %s", peer, e)
            neg.refuse(e.code)
            return
        if not self._session_alive(request.session_key):
            # as SoftEther: an unknown key means the session is gone, and 13
            # makes the client start over at once instead of after its timeout
            log.info("additional connection from %s refused: no such session", peer)
            neg.refuse(Err.SESSION_TIMEOUT)
            return
        # one TCP connection per session (module prose): 15 drops only this socket on the client
        log.info("additional connection from %s refused: sessions here use one TCP connection", peer)
        neg.refuse(Err.TOO_MANY_CONNECTION)

    def _counted(self, result: str) -> None:
        """One login's result for vpncluster_vpn_logins_total (node/metrics.py)."""
        self.server.metrics.vpn_logins.labels(result).inc()

    def _session_alive(self, session_key: bytes) -> bool:
        return any(hmac.compare_digest(session.session_key, session_key)
                   for hub in self.server.hubs.values()
                   for session in hub.sessions.values())

    async def _login(self, neg: _Negotiation, pack: Pack, random: bytes,
                     client_ip: str, client_port: int, peer: str) -> VpnSession | None:
        try:
            auth = AuthRequest.from_pack(pack)
        except ProtocolError as e:
            log.info("login from %s refused: %s", peer, e)
            self._counted(error_name(e.code))
            neg.refuse(e.code)
            await neg.epilogue()
            return None
        server = self.server
        backoff = server.vpn_login_backoff
        if backoff.wait(client_ip, time.monotonic()) > 0:
            # not checked (module prose); counted into the next logged failure
            neg.refuse(Err.AUTH_FAILED)
            await neg.epilogue()
            return None
        config = server.state.config
        controller = server.cluster.controller if config.farm.server_type == model.SERVER_CONTROLLER else None
        # A controller places the login first (the hub may run elsewhere or not yet).
        running = {h.name.lower() for h in config.hubs} if controller is not None \
            else {k for k, v in server.hubs.items() if not v.closed}
        try:
            granted = authenticate(
                config, auth, random, running=running, now_wall=time.time(),
                client_is_local=ipaddress.ip_address(client_ip).is_loopback, tickets=server.tickets,
                now=time.monotonic())
            if controller is not None:
                outcome = await controller.place_login(LoginRequest(
                    hub=granted.hub.name, user_name=granted.username, real_user_name=granted.real_username,
                    admin=granted.method == "administrator", client_ip=client_ip, unique_id=auth.unique_id))
                if isinstance(outcome, RedirectTo):
                    self._counted("redirected")
                    backoff.succeeded(client_ip)
                    await self._redirect(neg, outcome, granted, client_ip)
                    return None
                if isinstance(outcome, LoginFailed):
                    raise LoginRefused(error_number(outcome.error), f"not placed in the cluster: {outcome.error}")
                granted = dataclasses.replace(granted, session_name=outcome.session_name)
            found = server.running_hub(granted.hub.name)
            if found is None or found.closed:
                raise LoginRefused(Err.HUB_STOPPING, "the hub is not running here")
            running_hub = found
            if granted.hub.max_session and running_hub.session_count() >= granted.hub.max_session:
                raise LoginRefused(Err.HUB_IS_BUSY, f"the hub has its maximum of {granted.hub.max_session} sessions")
        except LoginRefused as e:
            line = backoff.failed(client_ip, time.monotonic())
            if line is not None:
                # names as the client sent them: quoted and cut, so they cannot forge log lines
                log.warning("login failed: user %.64r on hub %.64r from %s: %s (%s)%s",
                            auth.username, auth.hubname, client_ip, e.reason, error_name(e.code), line.suffix())
            self._counted(error_name(e.code))
            neg.refuse(e.code)
            await neg.epilogue()
            return None
        backoff.succeeded(client_ip)
        timeout_ms = self.timeout_ms if config.farm.server_type == model.SERVER_STANDALONE \
            else self.cluster_timeout_ms
        name = granted.session_name
        if not name or name in running_hub.sessions:  # SoftEther names ticket logins as the controller said
            name = running_hub.next_session_name(granted.username)
        session_key = os.urandom(SHA1_SIZE)
        welcome = Welcome(session_name=name, connection_name=f"CID-{next(self._connection_ids)}",
                          session_key=session_key, session_key_32=int.from_bytes(os.urandom(4), "big"),
                          use_compress=auth.use_compress, timeout_ms=timeout_ms)
        session = VpnSession(
            hub=running_hub.hub, name=name, username=granted.username, reader=neg.reader,
            writer=neg.writer, client_ip=client_ip, client_port=client_port, session_key=session_key,
            connection_name=welcome.connection_name, client_hostname=auth.client_hostname or client_ip, client_product=auth.client_str,
            client_version=auth.client_ver, client_build=auth.client_build, unique_id=auth.unique_id,
            use_compress=welcome.use_compress, timeout_ms=timeout_ms)
        try:
            running_hub.add_session(session)
        except (RuntimeError, ValueError) as e:  # the hub stopped while we were checking
            log.warning("login failed: user %.64r on hub %.64r from %s: %s",
                        auth.username, auth.hubname, client_ip, e)
            self._counted(error_name(Err.HUB_STOPPING))
            neg.refuse(Err.HUB_STOPPING)
            await neg.epilogue()
            return None
        neg.send(welcome.to_pack())
        self._counted("ok")
        log.info("session %s started: user %s (%s) on hub %s from %s:%d, %.64r build %d%s",
                 name, granted.username, granted.method, granted.hub.name, client_ip, client_port,
                 auth.client_str, auth.client_build, ", compressed" if welcome.use_compress else "")
        return session
