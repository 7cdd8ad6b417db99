"""One VPN session on the server: the data plane of one TCP/TLS connection
after the welcome, attached to a Virtual Hub as a port.

Two layers, as everywhere in node/:
- `DataChannel` is the sans-IO core of the connection: it is fed the bytes
  read from the socket and returns the Ethernet frames they completed (one
  batch per read), queues frames the hub switched to this session, and
  produces the bytes to write: everything queued as ONE data burst per call
  (blocks.encode_frames), plus a keep-alive when its timer is due. `now`
  (monotonic seconds) is a parameter; no clock, no socket.
- `VpnSession` is the asyncio edge and the hub `Port`: a read task (read a
  chunk, feed it, hand every frame of the chunk to `hub.input` as one batch)
  and a write task (woken by `send_frames` or by the next deadline; writes
  what the core produced).

Numbers (softether-protocol.md §6.1, §6.2; Connection.c, Session.c):
- T = the welcome's timeout, 20 000 ms. A keep-alive goes out when nothing
  was sent for max(rand % (T/2), T/5) ms, i.e. every 4..10 s
  (GenNextKeepAliveSpan); sending data re-arms that timer. Its filler is
  0..511 random bytes, as SendKeepAlive's.
- Nothing received for T ms ends the session (SoftEther closes the socket,
  then the session times out with ERR_SESSION_TIMEOUT).
- A broken block stream (block > 3200 bytes, keep-alive filler > 512) is a
  `BlockError`: SoftEther drops that TCP connection; with one connection per
  session (see vpn_handler.py) that ends this session, and only it.

Back-pressure: the hub never waits for a session. `send_frames` only
appends to a bounded queue (MAX_QUEUED_FRAMES); frames beyond it are dropped
and counted (`dropped_frames`), as a switch drops on a congested port, and
TCP inside the tunnel recovers. The write task waits for the socket
(drain) only when the transport buffer is over WRITE_HIGH_WATER, at most T;
a client that reads nothing for T is closed.

Invariants: bytes are written in order, one writer; the session is detached
from the hub before its socket closes, so no batch is queued after close;
`close()` is idempotent and may be called from any task, including the
session's own read/write task; a socket that does not finish closing within
CLOSE_WAIT_S is aborted, so a client that stops reading cannot pin it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from typing import TYPE_CHECKING, Callable

from node.softether.blocks import (
    MAX_KEEPALIVE_SIZE, MAX_PACKET_SIZE, BlockDecoder, BlockError, SessionTimeout,
    encode_frames, encode_keepalive, keepalive_span_s,
)

if TYPE_CHECKING:
    from node.dataplane.virtual_hub import VirtualHub

log = logging.getLogger("vpnd.session")

DEFAULT_TIMEOUT_MS = 20_000
MAX_QUEUED_FRAMES = 1024        # ~1.6 MB of full-size frames per session
READ_CHUNK = 256 * 1024
WRITE_HIGH_WATER = 256 * 1024   # transport buffer size above which we wait for the socket
CLOSE_WAIT_S = 2.0


class DataChannel:
    """Sans-IO data plane of one session connection (see the module prose).

    Counters: `recv_bytes`/`sent_bytes` (raw stream bytes after the welcome),
    `recv_frames`/`sent_frames`, `dropped_frames` = `dropped_queue_full`
    (frames beyond the queue's bound) + `dropped_oversize` (frames the
    protocol cannot carry: empty, or longer than MAX_PACKET_SIZE)."""

    __slots__ = ("timeout_s", "_timeout_ms", "compress", "max_queued_frames", "_decoder", "_queue",
                 "_rand", "_rand_bytes", "last_recv", "_next_keepalive",
                 "recv_bytes", "sent_bytes", "recv_frames", "sent_frames",
                 "dropped_queue_full", "dropped_oversize", "keepalives_sent")

    def __init__(self, *, now: float, timeout_ms: int = DEFAULT_TIMEOUT_MS, compress: bool = False,
                 max_queued_frames: int = MAX_QUEUED_FRAMES,
                 rand: random.Random | None = None,
                 rand_bytes: Callable[[int], bytes] = os.urandom) -> None:
        if timeout_ms <= 0:
            raise ValueError("timeout must be positive")
        self.timeout_s = timeout_ms / 1000.0
        self._timeout_ms = timeout_ms
        self.compress = compress
        self.max_queued_frames = max_queued_frames
        self._decoder = BlockDecoder(compress)
        self._queue: list[bytes] = []
        self._rand = rand if rand is not None else random.Random()
        self._rand_bytes = rand_bytes
        self.last_recv = now
        self._next_keepalive = now + self._keepalive_span()
        self.recv_bytes = self.sent_bytes = 0
        self.recv_frames = self.sent_frames = 0
        self.dropped_queue_full = self.dropped_oversize = 0
        self.keepalives_sent = 0

    # ---- receive ---------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[bytes]:
        """Bytes read from the client; returns every frame they completed, in
        order, as one list (maybe empty). Any bytes count as life.

        Raises BlockError when the stream is broken (close the session)."""
        if not data:
            return []
        self.recv_bytes += len(data)
        self.last_recv = now
        frames = self._decoder.feed_frames(data)
        self.recv_frames += len(frames)
        return frames

    @property
    def dropped_frames(self) -> int:
        return self.dropped_queue_full + self.dropped_oversize

    @property
    def keepalives_received(self) -> int:
        return self._decoder.keepalives

    def check_timeout(self, now: float) -> None:
        """Raises SessionTimeout once nothing was received for the timeout."""
        silent = now - self.last_recv
        if silent >= self.timeout_s:
            raise SessionTimeout(silent)

    # ---- send ------------------------------------------------------------------

    def queue_frames(self, frames: list[bytes]) -> bool:
        """Queue frames the hub switched here (never blocks; what does not fit
        is dropped and counted). True if the queue went from empty to
        non-empty, i.e. the writer must be woken."""
        queue = self._queue
        was_empty = not queue
        room = self.max_queued_frames - len(queue)
        if len(frames) <= room:
            queue += frames
        else:
            if room > 0:
                queue += frames[:room]
            self.dropped_queue_full += len(frames) - max(room, 0)
        return was_empty and bool(queue)

    @property
    def queued(self) -> int:
        """Frames waiting for the next `data_to_send`."""
        return len(self._queue)

    def data_to_send(self, now: float) -> bytes:
        """Everything queued as one data burst, then a keep-alive if its timer
        is due; b"" when there is nothing to write. Clears the queue."""
        out = b""
        if self._queue:
            frames, self._queue = self._queue, []
            try:
                out = encode_frames(frames, self.compress)
            except ValueError:  # a frame SoftEther cannot carry (empty, or a bridge's jumbo frame)
                kept = [f for f in frames if 0 < len(f) <= MAX_PACKET_SIZE]
                self.dropped_oversize += len(frames) - len(kept)
                frames = kept
                out = encode_frames(frames, self.compress)
            self.sent_frames += len(frames)
            if out:
                self._next_keepalive = now + self._keepalive_span()
        if now >= self._next_keepalive:
            out += encode_keepalive(self._rand_bytes(self._rand.randrange(MAX_KEEPALIVE_SIZE)))
            self.keepalives_sent += 1
            self._next_keepalive = now + self._keepalive_span()
        self.sent_bytes += len(out)
        return out

    def next_deadline(self) -> float:
        """When `data_to_send`/`check_timeout` must next run if nothing else
        happens: the keep-alive time or the receive timeout, whichever is first."""
        return min(self._next_keepalive, self.last_recv + self.timeout_s)

    def _keepalive_span(self) -> float:
        return keepalive_span_s(self._timeout_ms, self._rand.random())


class VpnSession:
    """A VPN session: hub port + the asyncio edge of its one connection.

    Built by vpn_handler after a successful login with the `VirtualHub` it
    feeds, registered with the running hub (hubs.RunningHub.add_session),
    which attaches it as a port and tells it how to leave (`attached`), then
    driven by `await session.run(initial)` until it ends. The session knows
    nothing of the running hub itself. The attributes below are what the
    admin API (EnumSession, GetSessionStatus) reads."""

    def __init__(self, *, hub: "VirtualHub", name: str, username: str,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 client_ip: str, client_port: int, session_key: bytes, connection_name: str = "",
                 client_hostname: str = "", client_product: str = "",
                 client_version: int = 0, client_build: int = 0, unique_id: bytes = b"",
                 use_compress: bool = False, timeout_ms: int = DEFAULT_TIMEOUT_MS,
                 max_queued_frames: int = MAX_QUEUED_FRAMES) -> None:
        self.hub = hub
        self._detach: Callable[[VpnSession], None] | None = None   # set by `attached`
        self.id = ("session", name)
        self.name = name
        self.connection_name = connection_name or name   # the welcome's "CID-n"
        self.username = username
        self.hub_name = hub.name
        self.client_ip = client_ip
        self.client_port = client_port
        self.client_hostname = client_hostname
        self.client_product = client_product
        self.client_version = client_version
        self.client_build = client_build
        self.created_time = time.time()
        self.tcp_connections = 1
        self.max_tcp_connections = 1
        self.use_encrypt = True
        self.use_compress = use_compress
        self.session_key = session_key
        self.unique_id = unique_id
        self.close_reason: str | None = None
        self._reader = reader
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._created_mono = self._loop.time()
        self.channel = DataChannel(now=self._created_mono, timeout_ms=timeout_ms,
                                   compress=use_compress, max_queued_frames=max_queued_frames)
        self._wakeup: asyncio.Future | None = None
        self._tasks: list[asyncio.Task] = []
        self._done = asyncio.Event()

    # ---- figures the admin API reads ---------------------------------------------

    @property
    def total_send_bytes(self) -> int:
        """Bytes the server sent to the client on the data plane."""
        return self.channel.sent_bytes

    @property
    def total_recv_bytes(self) -> int:
        """Bytes the server received from the client on the data plane."""
        return self.channel.recv_bytes

    @property
    def dropped_frames(self) -> int:
        return self.channel.dropped_frames

    @property
    def dropped_queue_full(self) -> int:
        return self.channel.dropped_queue_full

    @property
    def dropped_oversize(self) -> int:
        return self.channel.dropped_oversize

    @property
    def last_comm_time(self) -> float:
        """Wall time of the last bytes received (the channel's loop time, converted)."""
        return self.created_time + (self.channel.last_recv - self._created_mono)

    # ---- Port ----------------------------------------------------------------------

    def send_frames(self, frames: list[bytes]) -> None:
        """Called by the hub: queue and wake the writer; never blocks."""
        if self.channel.queue_frames(frames):
            wakeup = self._wakeup
            if wakeup is not None and not wakeup.done():
                wakeup.set_result(None)

    # ---- life ----------------------------------------------------------------------

    def attached(self, detach: Callable[[VpnSession], None]) -> None:
        """Called by whoever attached this session to its hub as a port:
        `detach(self)` takes it off again, and is called once, as the session
        closes. A session never attached is closed without detaching."""
        self._detach = detach

    async def run(self, initial: bytes = b"") -> None:
        """Serve the data plane until the session ends. `initial`: bytes the
        client sent right after its login (already read by the handshake).
        If the calling task is cancelled, the session is closed first."""
        self._tasks = [
            asyncio.create_task(self._read_loop(initial), name=f"{self.name}-read"),
            asyncio.create_task(self._write_loop(), name=f"{self.name}-write"),
        ]
        try:
            await self._done.wait()
        except asyncio.CancelledError:
            await self.close("the VPN server is shutting down")
            raise
        # the close() that set _done may still be finishing in another task
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self, reason: str) -> None:
        """End the session: leave the hub, stop both tasks, close the socket.
        Idempotent; returns when done (bounded by CLOSE_WAIT_S)."""
        if self.close_reason is not None:
            await self._done.wait()
            return
        self.close_reason = reason
        detach, self._detach = self._detach, None
        if detach is not None:
            detach(self)
        self.tcp_connections = 0
        ch = self.channel
        log.info("session %s (user %s, hub %s, %s) closed: %s; %d bytes in, %d out, %d frames dropped",
                 self.name, self.username, self.hub_name, self.client_ip, reason,
                 ch.recv_bytes, ch.sent_bytes, ch.dropped_frames)
        current = asyncio.current_task()
        others = [t for t in self._tasks if t is not current]
        for task in others:
            task.cancel()
        self._writer.close()
        try:
            async with asyncio.timeout(CLOSE_WAIT_S):
                await asyncio.gather(*others, return_exceptions=True)
                await self._writer.wait_closed()
        except TimeoutError:
            # a client that reads nothing would hold the socket and its unsent
            # buffer (TLS close_notify included) for as long as TCP lets it
            self._writer.transport.abort()
        except Exception:  # the socket failing as it closes: it is closed
            pass
        self._done.set()

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    # ---- tasks ---------------------------------------------------------------------

    async def _read_loop(self, initial: bytes) -> None:
        reason = "the client disconnected"
        try:
            data = initial
            while True:
                if data:
                    frames = self.channel.receive_data(data, self._loop.time())
                    if frames:
                        self.hub.input(self, frames)
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    break
        except BlockError as e:
            reason = f"protocol error: {e}"
        except (ConnectionError, OSError) as e:
            reason = f"connection error: {e}"
        except Exception as e:  # a bug must end this session, not leave it half alive
            log.exception("session %s: read failed", self.name)
            reason = f"internal error: {e!r}"
        await self.close(reason)

    async def _write_loop(self) -> None:
        loop = self._loop
        ch = self.channel
        writer = self._writer
        transport = writer.transport
        try:
            while True:
                now = loop.time()
                ch.check_timeout(now)
                out = ch.data_to_send(now)
                if out:
                    writer.write(out)
                    if transport.get_write_buffer_size() > WRITE_HIGH_WATER:
                        try:
                            async with asyncio.timeout(ch.timeout_s):
                                await writer.drain()
                        except TimeoutError:
                            raise ConnectionError(f"the client read nothing for {ch.timeout_s:g} s") from None
                    continue  # frames may have queued meanwhile
                if transport.is_closing():
                    return  # the read task sees the end and closes
                wakeup = self._wakeup = loop.create_future()
                try:
                    async with asyncio.timeout_at(ch.next_deadline()):
                        await wakeup
                except TimeoutError:
                    pass
                finally:
                    self._wakeup = None
        except SessionTimeout as e:
            await self.close(f"timed out: {e}")
        except (ConnectionError, OSError) as e:
            await self.close(f"connection error: {e}")
        except Exception as e:  # a bug must end this session, not leave it half alive
            log.exception("session %s: write failed", self.name)
            await self.close(f"internal error: {e!r}")
