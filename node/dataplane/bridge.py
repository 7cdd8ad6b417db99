"""Asyncio edges of the data plane: the Virtual Hub and local bridges.

`VirtualHub` owns one `Switch` core and a table of `Port`s. A port hands it
a batch of frames (`hub.input(port, frames)`); the hub reads the clock once,
forwards the batch through the core and calls each out port's
`send_frames` exactly once with that port's frames in order. VPN sessions
and local bridges are both ports.

`LocalBridge` joins a frame device (tap.py: a new TAP device or an existing
interface through AF_PACKET) to a hub. On each wake-up of the event loop it
drains every readable frame (`FrameDevice.read_frames`, at most `max_batch`;
the fd stays readable and the loop comes back) and hands them to the hub as
one batch. Writes are immediate and never queue (`write_frames`): what the
device cannot take now is dropped and counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Hashable, Iterable, Protocol, runtime_checkable

from node.dataplane.switch import IpTableItem, MacTableItem, Switch, Traffic
from node.dataplane.tap import TRANSIENT_ERRNOS, FrameDevice, open_packet, open_tap

log = logging.getLogger(__name__)

AGING_INTERVAL_S = 5.0
MAX_BATCH = 256


@runtime_checkable
class Port(Protocol):
    """Something frames can be switched to: a VPN session or a local bridge.

    `id` is hashable and unique within a hub; `name` is what MAC/IP table
    listings show (SoftEther's SessionName). `send_frames` receives one list
    per hub batch, must not block, and must not call back into `hub.input`
    synchronously (queue instead)."""

    id: Hashable
    name: str

    def send_frames(self, frames: list[bytes]) -> None: ...


class VirtualHub:
    """One Virtual Hub instance: a switch core plus its ports."""

    def __init__(self, name: str, *, switch: Switch | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 aging_interval_s: float = AGING_INTERVAL_S) -> None:
        self.name = name
        self.switch = switch if switch is not None else Switch()
        self._clock = clock
        self._ports: dict[Hashable, Port] = {}
        self._aging_interval_s = aging_interval_s
        self._timer: asyncio.TimerHandle | None = None
        self.send_errors = 0
        self.dropped_detached = 0  # batches

    # ---- ports ---------------------------------------------------------------

    def attach(self, port: Port) -> None:
        """Add a port (raises ValueError if its id is taken)."""
        self.switch.add_port(port.id, port.name)
        self._ports[port.id] = port

    def detach(self, port: Port) -> None:
        """Remove a port and its MAC/IP entries; a port not attached is ignored."""
        if self._ports.pop(port.id, None) is not None:
            self.switch.remove_port(port.id)

    @property
    def ports(self) -> list[Port]:
        return list(self._ports.values())

    # ---- packet path -----------------------------------------------------------

    def input(self, port: Port, frames: Iterable[bytes]) -> None:
        """Switch a batch of frames received from `port`. Frames from a port
        no longer attached (a batch in flight while it was detached) are
        dropped and counted in `dropped_detached`."""
        ports = self._ports
        if port.id not in ports:
            self.dropped_detached += 1
            return
        out = self.switch.forward_batch(port.id, frames, self._clock())
        for pid, batch in out.items():
            try:
                ports[pid].send_frames(batch)
            except Exception:  # one broken port must not stop delivery to the others
                self.send_errors += 1
                log.exception("hub %s: port %s failed to send", self.name, ports[pid].name)

    # ---- aging timer ---------------------------------------------------------

    def start(self) -> None:
        """Start the aging timer on the running loop."""
        if self._timer is None:
            self._arm()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._aging_interval_s, self._on_timer)

    def _on_timer(self) -> None:
        self.switch.handle_timer(self._clock())
        self._arm()

    def close(self) -> None:
        """Stop the timer and detach every port (ports are not closed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for port in list(self._ports.values()):
            self.detach(port)

    # ---- listings --------------------------------------------------------------

    def mac_table(self) -> list[MacTableItem]:
        return self.switch.mac_table()

    def ip_table(self) -> list[IpTableItem]:
        return self.switch.ip_table()

    def traffic(self, port: Port) -> Traffic:
        return self.switch.traffic(port.id)


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
