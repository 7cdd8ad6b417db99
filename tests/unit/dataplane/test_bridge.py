"""VirtualHub dispatch and LocalBridge batching, without root: a datagram
socketpair stands in for the TAP/AF_PACKET fd (one read = one frame)."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from node.dataplane.bridge import LocalBridge, Port, VirtualHub
from node.dataplane.tap import FrameDevice

BCAST = b"\xff" * 6


def mac(i: int) -> bytes:
    return bytes((2, 0, 0, 0, 0, i))


def eth(dst: bytes, src: bytes, tag: int = 0) -> bytes:
    return dst + src + b"\x88\xb5" + bytes([tag]) * 46


class RecordingPort:
    def __init__(self, pid: str) -> None:
        self.id = pid
        self.name = pid.upper()
        self.calls: list[list[bytes]] = []

    def send_frames(self, frames: list[bytes]) -> None:
        self.calls.append(list(frames))


class BrokenPort(RecordingPort):
    def send_frames(self, frames: list[bytes]) -> None:
        raise RuntimeError("boom")


def hub_with(*ports) -> VirtualHub:
    hub = VirtualHub("HUB", clock=lambda: 1.0)
    for p in ports:
        hub.attach(p)
    return hub


def test_recording_port_satisfies_the_port_protocol():
    assert isinstance(RecordingPort("x"), Port)


def test_one_send_frames_call_per_out_port_per_batch():
    a, b, c = RecordingPort("a"), RecordingPort("b"), RecordingPort("c")
    hub = hub_with(a, b, c)
    hub.input(b, [eth(BCAST, mac(2))])
    b.calls.clear()
    a.calls.clear()
    c.calls.clear()
    batch = [eth(mac(2), mac(1), 1), eth(BCAST, mac(1), 2), eth(mac(2), mac(1), 3)]
    hub.input(a, batch)
    assert b.calls == [batch]
    assert c.calls == [[batch[1]]]
    assert a.calls == []


def test_a_failing_port_does_not_stop_the_others():
    a, bad, c = RecordingPort("a"), BrokenPort("bad"), RecordingPort("c")
    hub = hub_with(a, bad, c)
    hub.input(a, [eth(BCAST, mac(1))])
    assert c.calls == [[eth(BCAST, mac(1))]]
    assert hub.send_errors == 1


def test_detach_forgets_entries_and_close_detaches_all():
    a, b = RecordingPort("a"), RecordingPort("b")
    hub = hub_with(a, b)
    hub.input(a, [eth(BCAST, mac(1))])
    hub.detach(a)
    hub.detach(a)  # idempotent
    assert hub.mac_table() == []
    with pytest.raises(ValueError):
        hub.attach(b)
    hub.input(a, [eth(BCAST, mac(1))])  # a batch in flight from a detached port
    assert hub.dropped_detached == 1 and b.calls == [[eth(BCAST, mac(1))]]
    hub.close()
    assert hub.ports == []


def _pair(name: str):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    dev = FrameDevice(name, ours.fileno(), False, lambda _fd, s=ours: s.close())
    return dev, theirs


def test_local_bridge_drains_every_ready_frame_as_one_batch():
    async def main():
        sink = RecordingPort("sink")
        hub = hub_with(sink)
        dev, wire = _pair("dev0")
        bridge = LocalBridge(hub, dev, max_batch=4)
        bridge.start()
        frames = [eth(BCAST, mac(1), i) for i in range(6)]
        for f in frames:
            wire.send(f)
        for _ in range(50):
            await asyncio.sleep(0.01)
            if bridge.recv_frames == 6:
                break
        # bounded per wake-up: 4 then the remaining 2
        assert sink.calls == [frames[:4], frames[4:]]
        # the write path: frames the hub sends to the bridge reach the wire
        hub.input(sink, [eth(mac(1), mac(9), 7)])
        assert wire.recv(100) == eth(mac(1), mac(9), 7)
        assert (bridge.sent_frames, bridge.recv_frames) == (1, 6)
        assert bridge.active and bridge.device.fd >= 0
        bridge.close()
        assert not bridge.active and bridge.device.fd == -1 and hub.ports == [sink]
        wire.close()

    asyncio.run(main())


def test_local_bridge_goes_inactive_on_a_fatal_read_error():
    async def main():
        hub = VirtualHub("HUB")
        r, w = os.pipe()
        os.set_blocking(r, False)
        # a pipe's write end cannot be read: EBADF, which is not transient
        dev = FrameDevice("dead0", w, False, os.close)
        bridge = LocalBridge(hub, dev)
        bridge.start()
        bridge._on_readable()
        assert not bridge.active and bridge.read_errors == 1
        bridge.send_frames([b"x" * 60])
        assert bridge.send_dropped == 1
        bridge.close()
        os.close(r)

    asyncio.run(main())


def test_aging_timer_runs_on_the_loop():
    async def main():
        now = [0.0]
        hub = VirtualHub("HUB", clock=lambda: now[0], aging_interval_s=0.01)
        a = RecordingPort("a")
        hub.attach(a)
        hub.start()
        hub.input(a, [eth(BCAST, mac(1))])
        assert len(hub.mac_table()) == 1
        now[0] = 600.0
        for _ in range(100):
            await asyncio.sleep(0.01)
            if not hub.mac_table():
                break
        assert hub.mac_table() == []
        hub.close()

    asyncio.run(main())
