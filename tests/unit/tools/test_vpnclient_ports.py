"""TapPort's read rounds without root: a datagram socketpair stands in for
the TAP fd (one read = one frame) and a fake connection records bursts."""

import asyncio
import errno
import socket

from node.dataplane.tap import FrameDevice
from tools.vpnclient.ports import TapPort


class FlakyDevice(FrameDevice):
    """A device whose next read rounds end with the scripted errors."""

    __slots__ = ("errors",)

    def read_frames(self, max_n):
        frames, error = super().read_frames(max_n)
        return frames, (self.errors.pop(0) if self.errors else error)


class RecordingConnection:
    def __init__(self) -> None:
        self.bursts: list[list[bytes]] = []

    def set_sink(self, sink, *, on_writable=None, on_blocked=None) -> None:
        self.sink = sink

    def send_frames(self, frames: list[bytes]) -> None:
        self.bursts.append(frames)


def test_a_temporary_read_error_keeps_reading_and_a_fatal_one_stops():
    async def main():
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        a.setblocking(False)
        dev = FlakyDevice("t0", a.fileno(), True, lambda _fd: a.close())
        dev.errors = [OSError(errno.ENOBUFS, "no buffer space"), OSError(errno.EIO, "device gone")]
        port = TapPort(dev)
        conn = RecordingConnection()
        port.attach(conn)
        b.send(b"1" * 60)
        port._readable()  # ENOBUFS: the frame still goes out, the device is read again
        assert conn.bursts == [[b"1" * 60]] and port._reading
        b.send(b"2" * 60)
        port._readable()  # EIO: the frame read goes out, then the device is left alone
        assert conn.bursts == [[b"1" * 60], [b"2" * 60]] and not port._reading
        port.detach()
        dev.close()
        b.close()

    asyncio.run(main())


def test_frames_from_the_vpn_are_written_and_refused_ones_counted():
    async def main():
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        a.setblocking(False)
        dev = FrameDevice("t0", a.fileno(), True, lambda _fd: a.close())
        port = TapPort(dev)
        conn = RecordingConnection()
        port.attach(conn)
        conn.sink([b"x" * 60])
        assert b.recv(100) == b"x" * 60 and port.dropped_in == 0
        b.close()
        conn.sink([b"x" * 60, b"y" * 60])
        assert port.dropped_in == 2
        port.detach()
        dev.close()

    asyncio.run(main())
