"""TLS listeners: one asyncio server per configured ADDR:PORT.

Each TLS connection carries HTTP/1.1 (h11) until something takes it over:
- POST /api or /api/ → the JSON-RPC admin API (node/admin/api.py); any
  other method on /api/... → 405 (SoftEther's GET /api/<Method> runs a
  method from a URL, which a browser holding Basic credentials would let any
  web page do);
- POST /vpnsvc/connect.cgi → the SoftEther VPN protocol (the handler the data
  plane registers; it owns the connection from then on);
- GET /metrics → Prometheus metrics for a scraper holding the scrape
  credential (node/metrics.py; 404 while none is set);
- OPTIONS → CORS preflight; GET / → a small page; anything else → 404.
CORS: SoftEther reflects any Origin with credentials allowed, so any web page
a browser holding the admin's Basic credentials visits could call the API
and read the answer. Here no origin is allowed unless configured
(`cors_origins`, vpnd --cors-origin): only those get the CORS headers.
Limits keep one slow or hostile client from hurting the others: a TLS
handshake timeout, a deadline per request (head and body) and per answer
(a peer that does not read), a request head of at most 16 KiB (the
request line and all headers), a body size limit (4 MiB for an admin call
whose headers carry valid credentials, else 64 KiB), at most 19 requests
per connection (SoftEther's HTTP loop does the same; the last answer says
"Connection: close"), and every error closes only that connection.
Connection floods: as SoftEther's listener (Listener.c, MaxConnectionsPerIP
and MaxUnestablishedConnections), at most 256 connections from one IP address
and at most 1000 connections that are not (yet) a VPN session; past either
cap a new TCP connection is closed at once. They are counted from the TCP
accept (TLS is started by us afterwards), so connections that never finish
the TLS handshake count too, and a connection becomes a session only when
its VPN login succeeded (the handler calls `on_session`), not when it posts
the signature: 4,000 connections parked after the signature once grew a
node to 1.17 GB.
Every admitted connection is in the server's ConnectionRegistry
(node/connections.py: EnumConnection) until it closes or becomes a VPN session.
Memory before the TLS handshake: asyncio gives every TLS connection a
256 KiB read buffer (SSLProtocol.max_size) from the start, so 1000
half-open handshakes held 256 MB and a connect-then-reset flood left the
heap grown. TLS_READ_BUFFER caps it at 32 KiB (two TLS records), and
HandshakeSlots lets at most 128 handshakes run at once (8 per address; the
others wait holding only a TCP socket): OpenSSL's handshake state is what
a connection costs most before it is secured. What freed connections leave
in glibc's heap is given back (malloc_trim, a few ms) a second after
every TRIM_AFTER_CLOSES closed connections: a flood's memory is returned,
not kept for the next one.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import ctypes
import ctypes.util
import logging
import socket
import ssl
from http import HTTPStatus
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, Protocol

import h11

from node.admin.api import credentials_valid, handle_admin_post
from node.connections import TYPE_ADMIN_RPC
from node.metrics import METRICS_PATH, handle_scrape
from node.server import VpnServer
from node.softether.signature import SIGNATURE_TARGET

log = logging.getLogger("vpnd.listener")

HANDSHAKE_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 15.0
CLOSE_WAIT_S = 10.0
MAX_REQUESTS_PER_CONNECTION = 19
MAX_HEAD_BYTES = 16 * 1024
# Before connecting to an address that is not its own, the 5.01 client sends
# "GET /" (header X-VPN: 1) and goes on only if the page carries this tag
# (http_detect_server_tag_future in SoftEther's Mayaqua/Network.c).
SOFTETHER_DETECT_TAG = b"9C37197CA7C2428388C2E6E59B829B30"
ROOT_PAGE = (b"<html><body><h1>vpncluster VPN Server</h1>"
             b"<p>This port serves the SoftEther VPN protocol and the JSON-RPC admin API at /api/.</p>"
             b"<!-- " + SOFTETHER_DETECT_TAG + b" --></body></html>")
MAX_CONNECTIONS_PER_IP = 256          # SoftEther's DEFAULT_MAX_CONNECTIONS_PER_IP
MAX_UNESTABLISHED_CONNECTIONS = 1000  # SoftEther's DEFAULT_MAX_UNESTABLISHED_CONNECTIONS
LISTEN_BACKLOG = 1024                 # a burst of connects waits in the kernel, not in SYN retries
REFUSAL_LOG_INTERVAL_S = 10.0
ADMIN_BODY_LIMIT = 4 * 1024 * 1024
OTHER_BODY_LIMIT = 64 * 1024
READ_CHUNK = 64 * 1024
TLS_READ_BUFFER = 32 * 1024
MAX_HANDSHAKES = 128          # TLS handshakes in progress at once (module prose)
MAX_HANDSHAKES_PER_IP = 8
TRIM_AFTER_CLOSES = 256
TRIM_INTERVAL_S = 1.0

# asyncio allocates max_size per TLS connection at once (module prose); a
# class attribute, as asyncio's start_tls makes the protocol itself.
asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


@dataclass(slots=True)
class HttpRequest:
    method: str
    target: str
    headers: dict[str, str]     # lower-case names
    body: bytes


class VpnHandler(Protocol):
    """Takes over a connection whose first request was the SoftEther
    signature; calls `on_session()` once the connection is a VPN session
    (a successful login), which lifts it out of the cap on connections that
    are not yet sessions."""

    def __call__(self, conn: h11.Connection, request: HttpRequest,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 peer: str, on_session: Callable[[], None]) -> Awaitable[None]: ...


RouteHandler = Callable[[HttpRequest, str], tuple[int, list[tuple[str, str]], bytes]]


class RequestRefused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


class ConnectionLimits:
    """Admission of TCP connections (sans-IO; the listener feeds it). A
    connection is admitted, may become established (a VPN session), and is
    closed; `admit` says why a new one is refused, or None and counts it."""

    def __init__(self, per_ip: int = MAX_CONNECTIONS_PER_IP,
                 unestablished: int = MAX_UNESTABLISHED_CONNECTIONS):
        self.per_ip, self.unestablished = per_ip, unestablished
        self._by_ip: dict[str, int] = {}
        self._pending: set[object] = set()   # admitted, not yet a VPN session

    def admit(self, ip: str, conn: object) -> str | None:
        if self._by_ip.get(ip, 0) >= self.per_ip:
            return f"{self.per_ip} connections from {ip} already"
        if len(self._pending) >= self.unestablished:
            return f"{self.unestablished} connections not yet established already"
        self._by_ip[ip] = self._by_ip.get(ip, 0) + 1
        self._pending.add(conn)
        return None

    def established(self, conn: object) -> None:
        self._pending.discard(conn)

    def closed(self, ip: str, conn: object) -> None:
        self._pending.discard(conn)
        left = self._by_ip.get(ip, 0) - 1
        if left > 0:
            self._by_ip[ip] = left
        else:
            self._by_ip.pop(ip, None)

    def connections_from(self, ip: str) -> int:
        return self._by_ip.get(ip, 0)

    def pending(self) -> int:
        return len(self._pending)


def _malloc_trim() -> Callable[[], None]:
    """glibc's malloc_trim(0) (returns free heap pages to the system), or a
    no-op where the C library has none."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int

    def release() -> None:
        trim(0)   # 1 if memory was returned, 0 if there was none to return
    return release


_release_free_memory = _malloc_trim()


TCP_ESTABLISHED = 1   # tcp_info.tcpi_state (Linux include/net/tcp_states.h)


def _peer_gone(writer: asyncio.StreamWriter) -> bool:
    """Whether the client of a connection whose reading is paused has reset
    or closed it (the paused transport cannot tell): the kernel's TCP state.
    A flood of connect-then-reset clients then costs no TLS handshake
    (an RSA signature each) for the connections that waited for a slot."""
    sock = writer.get_extra_info("socket")
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)
    except (OSError, AttributeError):
        return False
    return info[0] != TCP_ESTABLISHED


class HandshakeSlots:
    """At most MAX_HANDSHAKES TLS handshakes at once, MAX_HANDSHAKES_PER_IP
    of them from one address; a connection waits for a slot (holding only
    its TCP socket) within its handshake deadline. The per-address share
    keeps one address that starts handshakes and stalls from taking every
    slot."""

    def __init__(self, total: int = MAX_HANDSHAKES, per_ip: int = MAX_HANDSHAKES_PER_IP) -> None:
        self._total = asyncio.Semaphore(total)
        self._per_ip_limit = per_ip
        self._per_ip: dict[str, tuple[asyncio.Semaphore, int]] = {}   # semaphore, users

    @contextlib.asynccontextmanager
    async def slot(self, ip: str) -> AsyncIterator[None]:
        sem, users = self._per_ip.get(ip) or (asyncio.Semaphore(self._per_ip_limit), 0)
        self._per_ip[ip] = (sem, users + 1)
        try:
            async with sem, self._total:
                yield
        finally:
            sem, users = self._per_ip[ip]
            if users > 1:
                self._per_ip[ip] = (sem, users - 1)
            else:
                del self._per_ip[ip]


def _headers(head: h11.Request) -> dict[str, str]:
    return {n.decode("latin-1"): v.decode("latin-1") for n, v in head.headers}


async def read_request(conn: h11.Connection, reader: asyncio.StreamReader,
                       body_limit: Callable[[HttpRequest], int],
                       timeout_s: float = REQUEST_TIMEOUT_S) -> HttpRequest | None:
    """Read one whole request; None when the peer closed cleanly between
    requests. `body_limit` sees the head (an empty body) and gives the
    largest body allowed. Raises RequestRefused, TimeoutError or
    h11.RemoteProtocolError."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    head: HttpRequest | None = None
    body = bytearray()
    limit = OTHER_BODY_LIMIT
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("request not complete in time")
            data = await asyncio.wait_for(reader.read(READ_CHUNK), remaining)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.ConnectionClosed):
            if head is None:
                return None
            raise h11.RemoteProtocolError("connection closed inside a request")
        if isinstance(event, h11.Request):
            # h11 bounds a head that arrives in pieces; one that arrives whole
            # in a read is not, so measure it (a 200 KB head used to pass)
            size = len(event.method) + len(event.target) + sum(len(n) + len(v) + 4 for n, v in event.headers)
            if size > MAX_HEAD_BYTES:
                raise RequestRefused(431, f"request head over the {MAX_HEAD_BYTES}-byte limit")
            head = HttpRequest(event.method.decode("ascii", "replace"), event.target.decode("latin-1"),
                               _headers(event), b"")
            limit = body_limit(head)
            length = head.headers.get("content-length")   # h11 checked it is digits
            if length is not None and int(length) > limit:
                raise RequestRefused(413, f"body of {int(length)} bytes over the {limit}-byte limit")
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > limit:
                raise RequestRefused(413, f"body over the {limit}-byte limit")
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            head.body = bytes(body)
            return head


async def send_response(conn: h11.Connection, writer: asyncio.StreamWriter, status: int,
                        headers: list[tuple[str, str]], body: bytes, close: bool = False) -> None:
    all_headers = [*headers, ("Content-Length", str(len(body)))]
    if close:
        all_headers.append(("Connection", "close"))
    # A reason phrase always: SoftEther's HTTP parser wants three tokens.
    reason = HTTPStatus(status).phrase.encode() if status in HTTPStatus._value2member_map_ else b"Unknown"
    data = conn.send(h11.Response(status_code=status, headers=all_headers, reason=reason))
    data += conn.send(h11.Data(data=body)) if body else b""
    data += conn.send(h11.EndOfMessage())
    writer.write(data)
    await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT_S)


class Listener:
    def __init__(self, server: VpnServer, ssl_context: ssl.SSLContext,
                 limits: ConnectionLimits | None = None, cors_origins: frozenset[str] = frozenset(),
                 handshakes: HandshakeSlots | None = None):
        self.server = server
        self.cors_origins = cors_origins
        """Origins allowed to call the admin API from a web page (exact match)."""
        self.ssl_context = ssl_context
        self.limits = limits or ConnectionLimits()
        self._refused = 0
        self._refusal_logged_at: float | None = None
        self.vpn_handler: VpnHandler | None = None
        # Extra plain-HTTP routes, e.g. the cluster controller's bus discovery
        # (the server's table: the cluster role adds to it).
        self.routes = server.routes
        self._servers: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task] = set()
        self._closing = False
        """close() began: connections are aborted, not flushed for CLOSE_WAIT_S."""
        self._handshakes = handshakes or HandshakeSlots()
        self._closed_since_trim = 0
        self._trim_timer: asyncio.TimerHandle | None = None

    async def listen(self, host: str, port: int) -> None:
        # Plain TCP here; _accept starts TLS after admission (see ConnectionLimits).
        srv = await asyncio.start_server(self._accept, host, port, reuse_address=True, limit=READ_CHUNK,
                                         backlog=LISTEN_BACKLOG)
        self._servers.append(srv)
        log.info("listening on %s:%d (TLS)", host, srv.sockets[0].getsockname()[1] if srv.sockets else port)

    async def close(self) -> None:
        self._closing = True
        if self._trim_timer is not None:
            self._trim_timer.cancel()
        for srv in self._servers:
            srv.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for srv in self._servers:
            await srv.wait_closed()

    def _count_close(self) -> None:
        """See the module prose (memory after a flood): a trim TRIM_INTERVAL_S
        after the TRIM_AFTER_CLOSES-th close since the last one."""
        self._closed_since_trim += 1
        if self._closed_since_trim >= TRIM_AFTER_CLOSES and self._trim_timer is None:
            self._trim_timer = asyncio.get_running_loop().call_later(TRIM_INTERVAL_S, self._trim)

    def _trim(self) -> None:
        self._closed_since_trim, self._trim_timer = 0, None
        _release_free_memory()

    def _refuse(self, ip: str, why: str) -> None:
        """Log refusals at most every REFUSAL_LOG_INTERVAL_S: a flood must not
        flood the log too."""
        self._refused += 1
        now = asyncio.get_running_loop().time()
        if self._refusal_logged_at is None or now - self._refusal_logged_at >= REFUSAL_LOG_INTERVAL_S:
            log.warning("refused a connection from %s (%s); %d refused so far", ip, why, self._refused)
            self._refusal_logged_at = now

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Nothing is read before TLS starts: bytes the plain stream took in
        # while this connection waited for a handshake slot (the client's
        # ClientHello) would be lost to start_tls, and its handshake would
        # stall until HANDSHAKE_TIMEOUT_S. start_tls resumes reading.
        if isinstance(writer.transport, asyncio.ReadTransport):
            writer.transport.pause_reading()
        peername = writer.get_extra_info("peername") or ("?", 0)
        ip, peer = str(peername[0]), f"{peername[0]}:{peername[1]}"
        refused = self.limits.admit(ip, writer)
        if refused is not None:
            self._refuse(ip, refused)
            writer.transport.abort()
            return
        task = asyncio.current_task()
        if task:
            self._tasks.add(task)
        self.server.connections.add(writer, ip, int(peername[1]), writer.transport.abort)
        secured = False
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S), self._handshakes.slot(ip):
                if _peer_gone(writer):
                    raise ConnectionResetError("the client left while waiting for a handshake slot")
                await writer.start_tls(self.ssl_context)
            secured = True
            await self._serve(reader, writer, peer)
        except (ConnectionError, TimeoutError, ssl.SSLError, h11.RemoteProtocolError,
                asyncio.IncompleteReadError) as exc:
            log.debug("connection from %s ended: %s", peer, exc)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("connection from %s failed", peer)
        finally:
            self.limits.closed(ip, writer)
            self.server.connections.remove(writer)
            if task:
                self._tasks.discard(task)
            # close() flushes first; a peer that stopped reading would hold
            # the socket and its unsent bytes for ever, so abort after a while.
            # Waited for here, not with a timer holding the transport: a
            # timer kept every closed connection's buffers for CLOSE_WAIT_S,
            # which under a connect-then-reset flood was hundreds of MB.
            # Without TLS there is nothing to flush (and wait_closed would not
            # hear of the close: the failed TLS layer owns the socket).
            transport = writer.transport
            writer.close()
            # At shutdown nobody waits for a peer that does not read: the
            # servers' wait_closed() waits for every transport to go.
            if secured and not self._closing:
                try:
                    await asyncio.wait_for(writer.wait_closed(), CLOSE_WAIT_S)
                except (Exception, asyncio.CancelledError):
                    pass   # how the close ended changes nothing: abort below
            transport.abort()
            self._count_close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        for number in range(1, MAX_REQUESTS_PER_CONNECTION + 1):
            try:
                request = await read_request(conn, reader, lambda head: self._body_limit(head, peer))
            except RequestRefused as exc:
                log.info("refused a request from %s: %s", peer, exc)
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await send_response(conn, writer, exc.status, [("Content-Type", "text/plain")],
                                        str(exc).encode() + b"\n", close=True)
                return
            except h11.RemoteProtocolError as exc:
                log.info("malformed HTTP from %s: %s", peer, exc)
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await send_response(conn, writer, exc.error_status_hint, [("Content-Type", "text/plain")],
                                        b"bad request\n", close=True)
                return
            if request is None:
                return
            path = request.target.split("?", 1)[0].lower()
            if request.method == "POST" and path == SIGNATURE_TARGET and self.vpn_handler:
                await self.vpn_handler(conn, request, reader, writer, peer,
                                       lambda: self._established(writer))
                return
            status, headers, body = await self._route(request, path, peer, writer)
            await send_response(conn, writer, status, headers, body,
                                close=number == MAX_REQUESTS_PER_CONNECTION)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()

    def _established(self, writer: asyncio.StreamWriter) -> None:
        """A VPN session or a logged-in admin RPC: out of the cap on
        unestablished connections; a session also leaves the connection
        list, as in SoftEther (node/connections.py)."""
        self.limits.established(writer)
        self.server.connections.established(writer)

    def _body_limit(self, head: HttpRequest, peer: str) -> int:
        """4 MiB for an admin call with valid credentials (checked on the
        headers, before the body is read), 64 KiB for anything else: a
        caller without the password cannot make the node buffer megabytes on
        each of its connections."""
        path = head.target.split("?", 1)[0].lower()
        if (head.method == "POST" and path in ("/api", "/api/")
                and credentials_valid(self.server, head.headers, peer)):
            return ADMIN_BODY_LIMIT
        return OTHER_BODY_LIMIT

    async def _route(self, request: HttpRequest, path: str, peer: str,
                     writer: asyncio.StreamWriter) -> tuple[int, list[tuple[str, str]], bytes]:
        if path in ("/api", "/api/"):
            if request.method == "POST":
                self.server.connections.set_type(writer, TYPE_ADMIN_RPC)
                status, headers, body = await handle_admin_post(self.server, request.headers, request.body, peer)
                return status, headers + self._cors(request), body
            if request.method == "OPTIONS":
                return 200, self._cors(request), b""
            return 405, [("Content-Type", "text/plain"), ("Allow", "POST, OPTIONS")], b"use POST\n"
        if path.startswith("/api/"):
            # SoftEther's GET /api/<Method>?k=v: not served on purpose (README, Admin API)
            return 405, [("Content-Type", "text/plain"), ("Allow", "POST, OPTIONS")], b"use POST /api/\n"
        if path == METRICS_PATH:
            if request.method == "GET":
                return handle_scrape(self.server, request.headers, peer)
            return 405, [("Content-Type", "text/plain"), ("Allow", "GET")], b"use GET\n"
        route = self.routes.get((request.method, path))
        if route is not None:
            return route(request, peer)
        if request.method == "GET" and path == "/":
            return 200, [("Content-Type", "text/html; charset=utf-8")], ROOT_PAGE
        return 404, [("Content-Type", "text/plain")], b"not found\n"

    def _cors(self, request: HttpRequest) -> list[tuple[str, str]]:
        """CORS headers for a configured origin only (module prose); none
        otherwise, so a browser keeps the answer from any other page."""
        origin = request.headers.get("origin")
        if not origin or origin not in self.cors_origins:
            return []
        return [("Access-Control-Allow-Methods", "OPTIONS,POST"),
                ("Access-Control-Allow-Headers", "X-VPNADMIN-HUBNAME,X-VPNADMIN-PASSWORD,Authorization,Content-Type"),
                ("Access-Control-Allow-Credentials", "true"),
                ("Access-Control-Allow-Origin", origin),
                ("Vary", "Origin")]
