"""One SE-VPN TCP/TLS connection of the client: the asyncio edge.

`connect()` opens TCP + TLS (no certificate verification, like SoftEther's
client; with `expected_cert` the peer's DER certificate must be exactly
that one, which is how we pin a member after a redirect), then drives
`ClientLogin` to its terminal event. A welcome leaves a live `Connection`
whose data plane runs the `Tunnel` core; a redirect leaves the connection
closed after the empty PACK is flushed.

The data path is an asyncio.Protocol, not streams: `data_received` decodes
blocks and hands the completed frames to the sink in one call, and
`send_frames` writes one burst per call, so a TAP reader that drained N
frames costs one TLS write. Flow control: when the transport's buffer is
full (`pause_writing`) `writable` is False until `resume_writing`; ports
stop reading their source meanwhile. One timer, re-armed from the tunnel's
`next_deadline()`, sends keep-alives and detects T of silence.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Callable

from node.softether.errors import Err
from node.softether.handshake import Welcome
from node.softether.protocol_error import ProtocolError
from node.state.tlscert import client_context
from tools.vpnclient.login import ClientLogin, Credentials, LoginEvent, Welcomed
from tools.vpnclient.tunnel import Tunnel

log = logging.getLogger("vpnclient")
CONNECTING_TIMEOUT_S = 15.0  # SoftEther's per-receive limit while negotiating
Sink = Callable[[list[bytes]], None]


class ConnectFailed(ProtocolError):
    """TCP or TLS could not be set up, or the login took too long.
    Raised by `connect()`; the caller backs off and retries."""

    def __init__(self, message: str) -> None:
        super().__init__(message, Err.CONNECT_FAILED)


class CertMismatch(ProtocolError):
    """The server's TLS certificate is not the one the redirect named.
    Raised by `connect()`; the client drops the connection (as SoftEther
    does for a member whose certificate differs from the redirect's `Cert`)."""

    def __init__(self, server: str) -> None:
        super().__init__(f"TLS certificate of {server} differs from the redirect's", Err.CERT_NOT_TRUSTED)


class Disconnected(ProtocolError):
    """The data connection ended (peer closed, reset, broken stream)."""

    def __init__(self, message: str, code: int = Err.DISCONNECTED) -> None:
        super().__init__(message, code)


class _Protocol(asyncio.Protocol):
    def __init__(self, login: ClientLogin, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.login = login
        self.login_done: asyncio.Future[LoginEvent] = loop.create_future()
        self.closed: asyncio.Future[ProtocolError | None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.tunnel: Tunnel | None = None
        self.sink: Sink | None = None
        self.pending: list[bytes] = []  # frames that arrived before a sink was set
        self.writable = True
        self.on_writable: Callable[[], None] | None = None
        self.on_blocked: Callable[[], None] | None = None
        self.write_waiters: list[asyncio.Future[None]] = []
        self.reason: ProtocolError | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # typed BaseTransport; create_connection() gives a stream protocol a Transport
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            try:
                frames = tunnel.receive_data(data, self.loop.time())
            except ProtocolError as e:
                self.abort(e)
                return
            if frames:
                if self.sink is not None:
                    self.sink(frames)
                else:
                    self.pending += frames
            return
        if self.login_done.done():
            return  # after a redirect: nothing more is expected
        try:
            event = self.login.receive_data(data)
        except ProtocolError as e:
            self.login_done.set_exception(e)
            self.abort(e)
            return
        out = self.login.data_to_send()
        if out and self.transport is not None:
            self.transport.write(out)
        if event is not None:
            if isinstance(event, Welcomed):
                # Blocks may follow at once, before connect() resumes: the
                # tunnel must exist now or those bytes would be lost.
                w = event.welcome
                self.tunnel = Tunnel(timeout_ms=w.timeout_ms, now=self.loop.time(), compress=w.use_compress)
                trailing = self.login.trailing_data
                if trailing:
                    self.data_received(trailing)
            self.login_done.set_result(event)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.reason is None:
            self.reason = Disconnected(f"connection lost: {exc}" if exc else "server closed the connection")
        if not self.login_done.done():
            self.login_done.set_exception(self.reason)
        if not self.closed.done():
            self.closed.set_result(self.reason)
        self._wake_writers()

    def _wake_writers(self) -> None:
        waiters, self.write_waiters = self.write_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def pause_writing(self) -> None:
        self.writable = False
        if self.on_blocked is not None:
            self.on_blocked()

    def resume_writing(self) -> None:
        self.writable = True
        self._wake_writers()
        if self.on_writable is not None:
            self.on_writable()

    def abort(self, reason: ProtocolError | None) -> None:
        if self.reason is None:
            self.reason = reason
        if self.transport is not None:
            self.transport.abort()


class Connection:
    """An established session's data connection. Not created directly: see connect()."""

    def __init__(self, proto: _Protocol, *, server: str, welcome: Welcome, peer_cert: bytes) -> None:
        self._proto = proto
        self._loop = proto.loop
        self.server = server
        self.welcome = welcome
        self.peer_cert = peer_cert
        assert proto.tunnel is not None  # made when the welcome arrived
        self.tunnel = proto.tunnel
        self._timer: asyncio.TimerHandle | None = None
        self._arm()

    @property
    def closed(self) -> asyncio.Future[ProtocolError | None]:
        """Resolves (never raises) with why the connection ended (None: close())."""
        return self._proto.closed

    @property
    def writable(self) -> bool:
        return self._proto.writable and not self._proto.closed.done()

    def set_sink(self, sink: Sink | None, *, on_writable: Callable[[], None] | None = None,
                 on_blocked: Callable[[], None] | None = None) -> None:
        """Where received frames go (called from the event loop, must not
        raise) and callbacks for the transport's flow control."""
        p = self._proto
        p.sink, p.on_writable, p.on_blocked = sink, on_writable, on_blocked
        if sink is not None and p.pending:
            frames, p.pending = p.pending, []
            sink(frames)

    def send_frames(self, frames: list[bytes]) -> None:
        """Write `frames` as one burst (ignored once the connection is closed)."""
        transport = self._proto.transport
        if transport is None or transport.is_closing():
            return
        transport.write(self.tunnel.send_frames(frames, self._loop.time()))

    async def wait_writable(self) -> None:
        """Return when the transport accepts more data or the connection closed."""
        while not self.writable and not self.closed.done():
            waiter = self._loop.create_future()
            self._proto.write_waiters.append(waiter)
            await waiter

    def close(self) -> None:
        """Close now (no goodbye exists in SE-VPN); `closed` resolves with None."""
        if self._timer is not None:
            self._timer.cancel()
        if not self._proto.closed.done():
            self._proto.closed.set_result(None)
        if self._proto.transport is not None:
            self._proto.transport.abort()

    def _arm(self) -> None:
        self._timer = self._loop.call_at(self.tunnel.next_deadline(), self._on_timer)

    def _on_timer(self) -> None:
        if self._proto.closed.done():
            return
        try:
            data = self.tunnel.handle_timer(self._loop.time())
        except ProtocolError as e:
            self._proto.abort(e)
            return
        if data and self._proto.transport is not None:
            self._proto.transport.write(data)
        self._arm()


def _peer_cert(transport: asyncio.BaseTransport) -> bytes:
    sslobj = transport.get_extra_info("ssl_object")
    return (sslobj.getpeercert(binary_form=True) if sslobj is not None else None) or b""


async def connect(host: str, port: int, *, hub: str, username: str, credentials: Credentials,
                  expected_cert: bytes | None = None, timeout_s: float = CONNECTING_TIMEOUT_S,
                  tls: ssl.SSLContext | None = None,
                  local_address: str | None = None, unique_id: bytes = b"") -> tuple[LoginEvent, Connection | None]:
    """Log in at host:port. Returns (Welcomed, Connection) or (Redirected, None).

    `local_address`: the source IP of the TCP connection (default: the
    kernel's choice), e.g. 127.0.0.N so that many clients on one machine do
    not all count against a server's per-IP connection limit. `unique_id`:
    the login's machine id (SoftEther's `unique_id`), b"" to send none.

    Raises ConnectFailed (TCP/TLS/timeout), CertMismatch, ServerError (the
    server refused: `code`), ProtocolError (the server spoke nonsense).
    """
    loop = asyncio.get_running_loop()
    server = f"{host}:{port}"
    login = ClientLogin(host=host, hub=hub, username=username, credentials=credentials, unique_id=unique_id)
    proto = _Protocol(login, loop)
    # Nobody awaits login_done after a timeout or a certificate mismatch: take its
    # exception anyway, or asyncio logs "Future exception was never retrieved".
    proto.login_done.add_done_callback(lambda f: None if f.cancelled() else f.exception())
    try:
        transport, _ = await asyncio.wait_for(
            loop.create_connection(lambda: proto, host, port, ssl=tls or client_context(),
                                   server_hostname=host, ssl_handshake_timeout=timeout_s,
                                   local_addr=(local_address, 0) if local_address else None),
            timeout_s)
    except (OSError, asyncio.TimeoutError, ssl.SSLError) as e:
        raise ConnectFailed(f"cannot connect to {server}: {e or 'timeout'}") from None
    try:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cert = _peer_cert(transport)
        if expected_cert and cert != expected_cert:
            raise CertMismatch(server)
        transport.write(login.initiate())
        try:
            event = await asyncio.wait_for(asyncio.shield(proto.login_done), timeout_s)
        except asyncio.TimeoutError:
            raise ConnectFailed(f"{server}: no login answer within {timeout_s:.0f} s") from None
    except BaseException:
        transport.abort()
        raise
    if not isinstance(event, Welcomed):
        transport.close()  # flushes the empty PACK first
        return event, None
    return event, Connection(proto, server=server, welcome=event.welcome, peer_cert=cert)


