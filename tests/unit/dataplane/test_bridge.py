"""LocalBridge batching, without root: a datagram socketpair stands in for
the TAP/AF_PACKET fd (one read = one frame)."""

from __future__ import annotations

import asyncio
import os
import socket

from node.dataplane.bridge import LocalBridge
from node.dataplane.tap import FrameDevice
from node.dataplane.virtual_hub import VirtualHub
from tests.unit.dataplane.fakes import BCAST, RecordingPort, eth, hub_with, mac


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
