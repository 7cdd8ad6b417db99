"""tap.py without root: bad names are typed errors; the read/write rounds
over a datagram socketpair (one read = one frame, as on a TAP fd)."""

import asyncio
import errno
import os

import pytest

from node.dataplane.tap import TRANSIENT_ERRNOS, DeviceError, FrameDevice, open_packet, open_tap


@pytest.mark.parametrize("name", ["", "x" * 16, "a/b", "a\0b"])
def test_bad_interface_names_are_rejected_before_any_syscall(name):
    with pytest.raises(DeviceError):
        asyncio.run(open_tap(name))
    with pytest.raises(DeviceError):
        asyncio.run(open_packet(name))


def test_missing_interface_is_a_device_error():
    with pytest.raises(DeviceError):
        asyncio.run(open_packet("vcnosuch0"))


def _dgram_pair():
    import socket
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    return a, b


def test_read_frames_drains_what_is_ready_at_most_max_n_per_round():
    a, b = _dgram_pair()
    dev = FrameDevice("t0", a.fileno(), True, lambda _fd: a.close())
    frames = [bytes([i]) * 60 for i in range(3)]
    for f in frames:
        b.send(f)
    assert dev.read_frames(2) == (frames[:2], None)
    assert dev.read_frames(5) == (frames[2:], None)  # EAGAIN ends the round quietly
    assert dev.read_frames(5) == ([], None)
    dev.close()
    b.close()


def test_a_broken_device_ends_the_round_with_its_error():
    r, w = os.pipe()
    dev = FrameDevice("dead0", w, False, os.close)  # a pipe's write end cannot be read
    frames, error = dev.read_frames(4)
    assert frames == [] and error.errno == errno.EBADF and error.errno not in TRANSIENT_ERRNOS
    dev.close()
    os.close(r)


def test_write_frames_writes_each_frame_and_counts_what_the_device_refused():
    a, b = _dgram_pair()
    dev = FrameDevice("t0", a.fileno(), True, lambda _fd: a.close())
    assert dev.write_frames([b"x" * 60, b"y" * 70]) == (0, 130)
    assert (b.recv(100), b.recv(100)) == (b"x" * 60, b"y" * 70)
    b.close()  # the peer is gone: every write fails, nothing is queued
    assert dev.write_frames([b"x" * 60, b"y" * 70]) == (2, 0)
    dev.close()
