"""What the asyncio edges of the bus share: BusServer (server.py, controller,
ROUTER) and BusClient (client.py, member, DEALER) are thin subclasses of
:class:`Endpoint` that only frame/unframe for their socket type.

The edges hold no logic of their own beyond wiring: every frame goes through
:func:`vpnbus.envelope.decode`, then the sans-IO cores in requests.py
(RequestTracker, Liveness, DropCounter); after every input the edge runs one
"transmit" step: re-arm the single timer at the cores' earliest deadline.

Peers are named by their CURVE public key (z85 text, the ZAP User-Id).
Incoming messages:

- a reply (``reply_to`` set) resolves the matching :meth:`request` future;
- a ``bus.heartbeat`` only feeds liveness;
- anything else goes to ``handler(peer, message)`` (sync or async). Handlers
  run in one task per peer, in arrival order per peer, concurrently across
  peers; replies are resolved in the receive loop itself, so a handler may
  await a request to the same peer without deadlock. If the handler returns a
  message it is sent as the reply; if it raises :class:`RequestFailed` a
  ``bus.error`` reply is sent and the requester's :meth:`request` raises
  :class:`RemoteError`. Any other exception is logged and nothing is replied.

vpnbus's own records use the ``bus.`` tag prefix (``bus.heartbeat``,
``bus.error``); applications must not. Counters: :meth:`Endpoint.stats`.

Liveness events (:class:`PeerSeen`, :class:`PeerSilent`, :class:`PeerGone`) go
to ``on_event``. A member learns the controller is back from ``PeerSeen`` and
then re-joins. A heartbeat that finds no route to its peer (the controller's
ROUTER, after a connection closed) reports that peer gone at once.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from .envelope import MAX_FRAME_BYTES, REGISTRY, BadMessage, Envelope, Reason, Registry, \
    decode, encode, message
from .keys import Keypair
from .requests import DropCounter, HeartbeatDue, Liveness, PeerGone, PeerSeen, PeerSilent, \
    RequestTracker
from .sockets import BusClosed, BusError, PeerUnreachable, SocketOptions, send_nowait

log = logging.getLogger(__name__)


@message("bus.heartbeat")
class Heartbeat:
    """Either way, every heartbeat interval while nothing else was sent."""


@message("bus.error")
class ErrorReply:
    """Reply to a request whose handler raised RequestFailed."""

    code: int
    """Application error code (e.g. a SoftEther error number)."""
    text: str
    """Human-readable cause."""


class RequestFailed(Exception):
    """Raised by a request handler to answer with ``bus.error`` (code, text)."""

    def __init__(self, code: int, text: str = "") -> None:
        super().__init__(f"{code}: {text}")
        self.code, self.text = code, text


class RequestTimeout(BusError):
    """No reply before the deadline. The peer may still act on the request."""


class RemoteError(BusError):
    """The peer answered with ``bus.error``; ``code``/``text`` say why."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"remote error {code}: {text}")
        self.code, self.text = code, text


Handler = Callable[[str, Any], "Awaitable[Any | None] | Any | None"]
LivenessEvent = PeerSeen | PeerSilent | PeerGone
EventCallback = Callable[[LivenessEvent], None]

_MONITORED: dict[int, str] = {
    zmq.EVENT_HANDSHAKE_SUCCEEDED: "handshake_succeeded",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake_failed_no_detail",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake_failed_protocol",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "handshake_failed_auth",
    zmq.EVENT_DISCONNECTED: "disconnected",
}


@dataclasses.dataclass(frozen=True, slots=True)
class BusConfig:
    """Numbers of one endpoint (defaults follow DESIGN.md: 3 s liveness)."""

    socket: SocketOptions = SocketOptions()
    request_timeout_s: float = 5.0
    heartbeat_interval_s: float = 1.0
    silence_timeout_s: float = 3.0
    max_frame_bytes: int = MAX_FRAME_BYTES
    inbox_limit: int = 1000
    """Messages queued per peer for the handler before new ones are dropped."""
    registry: Registry = REGISTRY


class Endpoint:
    """What both edges share: cores, receive loop, timer, handler inboxes."""

    def __init__(self, keys: Keypair, handler: Handler,
                 on_event: EventCallback | None, config: BusConfig) -> None:
        self.keys = keys
        self.config = config
        self._handler = handler
        self._on_event = on_event
        self._ctx = zmq.asyncio.Context()
        self._sock: zmq.asyncio.Socket | None = None
        self._monitor: zmq.asyncio.Socket | None = None
        self._loop = asyncio.get_running_loop()
        self._tracker = RequestTracker(config.request_timeout_s)
        self._liveness = Liveness(config.heartbeat_interval_s, config.silence_timeout_s)
        self._drops = DropCounter()
        self.counters: collections.Counter[str] = collections.Counter()
        """messages_in/out, send_failed_<error>, handler_errors, inbox_full and
        libzmq monitor events (handshake_failed_auth, ...)."""
        self._timer: asyncio.TimerHandle | None = None
        self._inboxes: dict[str, collections.deque] = {}
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    # -- life ---------------------------------------------------------------

    def _run(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_loops(self) -> None:
        assert self._sock is not None
        self._monitor = self._sock.get_monitor_socket(sum(_MONITORED))
        self._run(self._recv_loop(self._sock))
        self._run(self._monitor_loop(self._monitor))
        self._transmit()

    async def close(self) -> None:
        """Stop everything; pending requests raise BusClosed. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._timer:
            self._timer.cancel()
        for pending in self._tracker.pending():
            self._tracker.cancel(pending.id)
            if not pending.waiter.done():
                pending.waiter.set_exception(BusClosed("endpoint closed"))
        self._stop_monitor()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._close_sockets()
        self._ctx.destroy(linger=0)

    def _stop_monitor(self) -> None:
        """Stop libzmq's monitor while its reader is still open, and only then
        close the reader. libzmq emits events from its I/O thread with a
        blocking send under the monitor lock: with the reader closed first, an
        event (a peer disconnecting) blocks that thread forever, and
        disable_monitor then waits on the lock for ever (libzmq#3575,
        pyzmq#1020; seen as a hung test)."""
        if self._monitor is None:
            return
        assert self._sock is not None
        self._sock.disable_monitor()
        self._monitor.close(linger=0)
        self._monitor = None

    def _close_sockets(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- counters -----------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """A snapshot of every counter (for tests and the admin API)."""
        dropped: dict[str, dict[str, int]] = {}
        for (peer, reason), n in self._drops.counts.items():
            dropped.setdefault(peer, {})[reason] = n
        return {
            "counters": dict(self.counters),
            "dropped": dropped,
            "requests": {"pending": len(self._tracker.pending()),
                         "timeouts": self._tracker.timeouts,
                         "late_replies": self._tracker.late_replies,
                         "unknown_replies": self._tracker.unknown_replies},
            "peers": sorted(self._liveness.peers),
        }

    def dropped(self, reason: Reason | str | None = None) -> int:
        """Frames dropped for ``reason`` (all reasons if None)."""
        return self._drops.total(None if reason is None else str(reason))

    @property
    def peers(self) -> frozenset[str]:
        """Peers heard from within the silence timeout."""
        return self._liveness.peers

    # -- sending ------------------------------------------------------------

    def _frames(self, peer: str, payload: bytes) -> list[bytes]:
        raise NotImplementedError  # each edge frames for its socket type

    def _send(self, peer: str, envelope: Envelope) -> None:
        """Encode and send without waiting; raises BusError subclasses."""
        if self._closed or self._sock is None:
            raise BusClosed("endpoint closed")
        payload = encode(envelope, registry=self.config.registry,
                         max_frame_bytes=self.config.max_frame_bytes)
        try:
            send_nowait(self._sock, self._frames(peer, payload))
        except BusError as exc:
            self.counters[f"send_failed_{type(exc).__name__}"] += 1
            raise
        self.counters["messages_out"] += 1
        self.counters[f"bytes_out.{type(envelope.message).__name__}"] += len(payload)  # what each kind costs
        self._liveness.sent_to(peer, self._loop.time())

    def _notify(self, peer: str, msg: Any) -> None:
        self._send(peer, Envelope(msg, self._tracker.next_id()))

    async def _request(self, peer: str, msg: Any, timeout_s: float | None) -> Any:
        waiter = self._loop.create_future()
        pending = self._tracker.start(peer, self._loop.time(), timeout_s, waiter)
        try:
            self._send(peer, Envelope(msg, pending.id))
        except BaseException:  # BusError, or our own encode error
            self._tracker.cancel(pending.id)
            raise
        self._transmit()
        try:
            return await waiter
        finally:
            self._tracker.cancel(pending.id)  # caller cancelled: forget quietly
            self._transmit()

    # -- receiving ----------------------------------------------------------

    async def _recv_loop(self, sock: zmq.asyncio.Socket) -> None:
        while True:
            try:
                frames = await sock.recv_multipart(copy=False)
            except zmq.ZMQError as exc:  # socket or context gone under us
                if not self._closed:
                    log.error("bus socket failed, endpoint stops receiving: %s", exc)
                    self.counters["socket_failed"] += 1
                return
            try:
                unframed = self._unframe(frames)
                if unframed is not None:
                    self._on_payload(*unframed)
            except Exception:  # a bug here must not stop the bus
                log.exception("bus receive step failed")
                self.counters["receive_errors"] += 1
            self._transmit()

    def _unframe(self, frames: list[zmq.Frame]) -> tuple[str, zmq.Frame] | None:
        """(peer, payload frame), or None if the frames were dropped."""
        raise NotImplementedError  # each edge unframes for its socket type

    def _drop(self, peer: str, exc: BadMessage) -> None:
        if self._drops.add(peer, exc.reason.value):
            log.warning("dropping bad bus frames from %s: %s (logged once per reason)",
                        peer, exc)

    def _on_payload(self, peer: str, payload: zmq.Frame) -> None:
        try:
            envelope = decode(payload.bytes, registry=self.config.registry,
                              max_frame_bytes=self.config.max_frame_bytes)
        except BadMessage as exc:
            self._drop(peer, exc)
            return
        self.counters["messages_in"] += 1
        self._emit(self._liveness.heard_from(peer, self._loop.time()))
        msg = envelope.message
        if envelope.reply_to is not None:
            pending = self._tracker.resolve(envelope.reply_to, peer)
            if pending is not None and not pending.waiter.done():
                if isinstance(msg, ErrorReply):
                    pending.waiter.set_exception(RemoteError(msg.code, msg.text))
                else:
                    pending.waiter.set_result(msg)
        elif not isinstance(msg, Heartbeat):
            self._enqueue(peer, envelope)

    def _enqueue(self, peer: str, envelope: Envelope) -> None:
        inbox = self._inboxes.get(peer)
        if inbox is None:
            inbox = self._inboxes[peer] = collections.deque()
            self._run(self._drain(peer, inbox))
        if len(inbox) >= self.config.inbox_limit:
            self.counters["inbox_full"] += 1
            return
        inbox.append(envelope)

    async def _drain(self, peer: str, inbox: collections.deque) -> None:
        try:
            while inbox:
                await self._handle(peer, inbox.popleft())
        finally:
            # No await between the last emptiness check and this: nothing lost.
            self._inboxes.pop(peer, None)

    async def _handle(self, peer: str, envelope: Envelope) -> None:
        try:
            reply = self._handler(peer, envelope.message)
            if inspect.isawaitable(reply):
                reply = await reply
        except RequestFailed as exc:
            reply = ErrorReply(code=exc.code, text=exc.text)
        except Exception:
            self.counters["handler_errors"] += 1
            log.exception("bus handler failed on %s from %s",
                          type(envelope.message).__name__, peer)
            return
        if reply is None:
            return
        try:
            self._send(peer, Envelope(reply, self._tracker.next_id(), reply_to=envelope.id))
        except BusError as exc:
            log.debug("reply to %s not sent: %s", peer, exc)
        except (KeyError, TypeError, ValueError):  # the handler returned an unsendable reply
            self.counters["handler_errors"] += 1
            log.exception("bus handler reply to %s from %s not encodable",
                          type(envelope.message).__name__, peer)
        self._transmit()

    async def _monitor_loop(self, monitor: zmq.asyncio.Socket) -> None:
        while True:
            try:
                event = parse_monitor_message(await monitor.recv_multipart())
            except zmq.ZMQError:
                # Monitoring is best effort; the bus keeps working. Stopped
                # (not just left unread), so libzmq never blocks on it.
                self._stop_monitor()
                return
            name = _MONITORED.get(event["event"])
            if name:
                self.counters[name] += 1
                self._on_monitor(name)

    def _on_monitor(self, name: str) -> None:
        """Hook for an edge to react to a libzmq connection event."""

    # -- time ---------------------------------------------------------------

    def _emit(self, events: Sequence[LivenessEvent]) -> None:
        for event in events:
            # Debug only: strangers (any key may connect) would write two lines per fresh key.
            log.debug("bus: %s", event)
            if self._on_event is not None:
                try:
                    self._on_event(event)
                except Exception:
                    log.exception("bus event callback failed on %s", event)

    def _on_timer(self) -> None:
        self._timer = None
        now = self._loop.time()
        for pending in self._tracker.handle_timer(now):
            if not pending.waiter.done():
                pending.waiter.set_exception(
                    RequestTimeout(f"no reply from {pending.peer} to request {pending.id}"))
        for event in self._liveness.handle_timer(now):
            if isinstance(event, HeartbeatDue):
                try:
                    self._notify(event.peer, Heartbeat())
                except PeerUnreachable:
                    self._emit(self._liveness.unreachable(event.peer, now))
                except BusError:
                    pass  # counted in _send; liveness decides, not one lost beat
            else:
                self._emit([event])
        self._transmit()

    def _transmit(self) -> None:
        """Re-arm the one timer at the cores' earliest deadline."""
        if self._closed:
            return
        deadlines = [d for d in (self._tracker.next_deadline(), self._liveness.next_deadline())
                     if d is not None]
        if not deadlines:
            return
        when = min(deadlines)
        if self._timer is not None:
            if self._timer.when() == when:
                return
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._on_timer)
