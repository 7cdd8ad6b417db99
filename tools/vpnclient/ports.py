"""Where a session's frames come from and go to: a TAP device or the process.

A port is attached to each new `Connection` and detached when it ends; the
reconnect loop keeps the same port across sessions, so the TAP device (and
its addresses) survives a failover.

TapPort, the packet path (STYLE §11): one reader callback per wake-up
drains every readable frame (up to `MAX_BURST`) and sends them as ONE
burst; received frames are written straight to the non-blocking fd (a
full TAP queue drops the frame, as a NIC would). Both go through the
device's `read_frames`/`write_frames`, as local bridges do (a temporary
error ends a read round; any other stops reading the device). When the TLS transport's
buffer is full the reader is removed until it drains, so the kernel queues
(and eventually drops) instead of us buffering without bound.

UserspacePort: frames from the VPN are queued (bounded; the oldest are
dropped beyond `max_queue`, counted) for `receive()`; an optional
`Responder` answers ARP/ping for an IP in-process.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
from typing import Protocol

from node.dataplane.tap import TRANSIENT_ERRNOS, FrameDevice
from tools.vpnclient.connection import Connection
from tools.vpnclient.frames import Responder

MAX_BURST = 512  # frames per TAP wake-up; bounds one burst at ~800 KB


class FramePort(Protocol):
    """What the reconnect loop needs of a port (TapPort, UserspacePort)."""

    def attach(self, conn: Connection) -> None:
        """Carry frames over `conn` (a new session) from now on."""

    def detach(self) -> None:
        """The session ended; stop using its connection."""


class NotConnected(Exception):
    """No session is up (raised by UserspacePort.send_frames when asked not
    to wait, or when waiting for one timed out)."""


class TapPort:
    """Frames between a TAP device and the current connection."""

    def __init__(self, device: FrameDevice) -> None:
        self.device = device
        self._conn: Connection | None = None
        self._reading = False
        self.dropped_in = 0  # VPN -> TAP frames the kernel refused

    def attach(self, conn: Connection) -> None:
        self._conn = conn
        conn.set_sink(self._write, on_writable=self._start_reading, on_blocked=self._stop_reading)
        self._start_reading()

    def detach(self) -> None:
        self._stop_reading()
        if self._conn is not None:
            self._conn.set_sink(None)
        self._conn = None

    def _start_reading(self) -> None:
        if not self._reading and self._conn is not None and self.device.fd >= 0:
            asyncio.get_running_loop().add_reader(self.device.fd, self._readable)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            asyncio.get_running_loop().remove_reader(self.device.fd)
            self._reading = False

    def _readable(self) -> None:
        frames, error = self.device.read_frames(MAX_BURST)
        if error is not None and error.errno not in TRANSIENT_ERRNOS:
            self._stop_reading()  # device gone; the session goes on without it
        if frames and self._conn is not None:
            # a frame too big for SE-VPN is dropped there (counted in tunnel.dropped_frames)
            self._conn.send_frames(frames)

    def _write(self, frames: list[bytes]) -> None:
        self.dropped_in += self.device.write_frames(frames)[0]


class UserspacePort:
    """Frames between the VPN and Python code (see UserspaceClient)."""

    def __init__(self, *, max_queue: int = 65536, responder: Responder | None = None) -> None:
        self._conn: Connection | None = None
        self._queue: collections.deque[bytes] = collections.deque()
        self._max_queue = max_queue
        self._arrived = asyncio.Event()
        self._attached = asyncio.Event()
        self.responder = responder
        self.dropped_in = 0

    @property
    def connection(self) -> Connection | None:
        return self._conn

    def attach(self, conn: Connection) -> None:
        self._conn = conn
        conn.set_sink(self._deliver)
        self._attached.set()

    def detach(self) -> None:
        if self._conn is not None:
            self._conn.set_sink(None)
        self._conn = None
        self._attached.clear()

    def _deliver(self, frames: list[bytes]) -> None:
        responder = self.responder
        if responder is not None:
            replies = [r for r in map(responder.handle, frames) if r is not None]
            if replies and self._conn is not None:
                self._conn.send_frames(replies)
        queue = self._queue
        queue.extend(frames)
        excess = len(queue) - self._max_queue
        if excess > 0:
            self.dropped_in += excess
            for _ in range(excess):
                queue.popleft()
        self._arrived.set()

    async def wait_attached(self, timeout_s: float | None) -> Connection:
        try:
            await asyncio.wait_for(self._attached.wait(), timeout_s)
        except asyncio.TimeoutError:
            raise NotConnected(f"no VPN session within {timeout_s} s") from None
        assert self._conn is not None
        return self._conn

    async def send_frames(self, frames: list[bytes], *, wait_s: float | None = 30.0) -> bool:
        """Send `frames` as one burst. Without a session: wait up to `wait_s`
        for one (NotConnected after that); wait_s=0 drops them and returns
        False instead. Waits while the transport is congested."""
        conn = self._conn
        if conn is None:
            if wait_s == 0:
                return False
            conn = await self.wait_attached(wait_s)
        await conn.wait_writable()
        if conn.closed.done():
            return False
        conn.send_frames(frames)
        return True

    def drain(self) -> list[bytes]:
        """Every frame received so far (no waiting)."""
        frames = list(self._queue)
        self._queue.clear()
        self._arrived.clear()
        return frames

    async def receive(self, timeout_s: float | None = None) -> bytes:
        """The next frame from the VPN; asyncio.TimeoutError after `timeout_s`."""
        while not self._queue:
            self._arrived.clear()
            await asyncio.wait_for(self._arrived.wait(), timeout_s)
        return self._queue.popleft()


async def add_address(ifname: str, cidr: str) -> None:
    """Give interface `ifname` (in this namespace) the address `cidr`."""
    from pyroute2 import AsyncIPRoute

    iface = ipaddress.ip_interface(cidr)
    async with AsyncIPRoute() as ipr:
        index = (await ipr.link_lookup(ifname=ifname))[0]
        await ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
