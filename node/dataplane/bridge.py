"""Local bridges: a frame device joined to a Virtual Hub as one of its ports.

`LocalBridge` joins a frame device (tap.py: a new TAP device or an existing
interface through AF_PACKET) to a hub (virtual_hub.py). On each wake-up of
the event loop it drains every readable frame (`FrameDevice.read_frames`, at
most `max_batch`; the fd stays readable and the loop comes back) and hands
them to the hub as one batch. Writes are immediate and never queue
(`write_frames`): what the device cannot take is dropped and counted.
"""

from __future__ import annotations

import asyncio
import logging

from node.dataplane.tap import TRANSIENT_ERRNOS, FrameDevice, open_packet, open_tap
from node.dataplane.virtual_hub import VirtualHub

log = logging.getLogger(__name__)

MAX_BATCH = 256


class LocalBridge:
    """A hub port backed by a frame device (TAP or AF_PACKET)."""

    def __init__(self, hub: VirtualHub, device: FrameDevice, *, name: str | None = None,
                 max_batch: int = MAX_BATCH) -> None:
        self.hub = hub
        self.device = device
        self.id = ("bridge", device.name)
        # SoftEther names a local bridge session SID-LOCALBRIDGE-<n>; we show the device
        self.name = name if name is not None else f"SID-LOCALBRIDGE-{device.name.upper()}"
        self.max_batch = max_batch
        self.active = False
        self.recv_frames = self.recv_bytes = 0
        self.sent_frames = self.sent_bytes = 0
        self.send_dropped = 0
        self.read_errors = 0
        self.last_error: OSError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    async def open(cls, hub: VirtualHub, device_name: str, *, tap_mode: bool,
             **kwargs) -> "LocalBridge":
        """Open the device (TAP: create it; else attach with AF_PACKET), wrap it
        and start it. Raises tap.DeviceError."""
        device = await (open_tap(device_name) if tap_mode else open_packet(device_name))
        bridge = cls(hub, device, **kwargs)
        try:
            bridge.start()
        except BaseException:
            device.close()
            raise
        return bridge

    def start(self) -> None:
        """Attach to the hub and start reading (needs a running loop)."""
        self._loop = asyncio.get_running_loop()
        self.hub.attach(self)
        self._loop.add_reader(self.device.fd, self._on_readable)
        self.active = True

    def _on_readable(self) -> None:
        frames, error = self.device.read_frames(self.max_batch)
        if error is not None:
            if error.errno in TRANSIENT_ERRNOS:
                self.read_errors += 1
            else:
                self._fail(error)
        if frames:
            self.recv_frames += len(frames)
            self.recv_bytes += sum(map(len, frames))
            self.hub.input(self, frames)

    def _fail(self, error: OSError) -> None:
        # the device vanished or broke: stop reading, stay attached until closed
        self.read_errors += 1
        self.last_error = error
        log.warning("local bridge %s: read failed, going inactive: %s", self.device.name, error)
        if self.active and self._loop is not None:
            self._loop.remove_reader(self.device.fd)
        self.active = False

    def send_frames(self, frames: list[bytes]) -> None:
        """Write frames to the device now; what it cannot take is dropped."""
        if not self.active:
            self.send_dropped += len(frames)
            return
        dropped, written = self.device.write_frames(frames)
        self.send_dropped += dropped
        self.sent_frames += len(frames) - dropped
        self.sent_bytes += written

    def close(self) -> None:
        """Stop reading, leave the hub, close the device (a TAP device goes away)."""
        if self.active and self._loop is not None:
            self._loop.remove_reader(self.device.fd)
        self.active = False
        self.hub.detach(self)
        self.device.close()
