"""The data plane service: keeps hub instances and local bridges in step with
the config for the life of the daemon.

`DataPlane.start()` starts a running hub (hubs.RunningHub) for every hub
`hosted_hubs()` picks, opens the configured local bridges, and watches the
config: every durable change re-runs the same reconciliation, so CreateHub,
SetHubOnline/Offline, DeleteHub, AddLocalBridge and DeleteLocalBridge act at
once, without a restart. An instance that goes away (hub offline or
deleted) disconnects its sessions (`session.close(reason)` in a task each)
and closes its bridges. A hub whose type changed (a pushed config, a mode
change) is restarted the same way (sync_instances), as SoftEther's member
restarts it in SiCalledUpdateHub; its bridges reopen on the new instance.

Local bridges, as SoftEther's (Bridge.c): a bridge whose hub runs is
"Online"; it is "Active" while its device is open. A device that cannot be
opened (TAP driver missing, no permission, no such NIC) or that broke later
leaves the bridge Online but not Active; it stays in the config and every
`retry_interval_s` (3 s, SoftEther's bridge thread retries on a similar beat)
one attempt is made per such bridge -- a few syscalls, so cheap. A state
change (opened, failed with a new error, went inactive) is logged once, not
on every retry.

TAP naming: SoftEther on Linux names the TAP device of bridge "X"
`tap_` + lower(X), cut to 15 bytes (VLanUnix.c GenerateTunName). We use the
same name, and refuse (at AddLocalBridge) names that would be cut, so two
bridges can never end up on one device. `device_name()` is that rule.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

from node.dataplane.bridge import LocalBridge
from node.dataplane.hubs import RunningHub, hosted_hubs, sync_instances
from node.dataplane.tap import IFNAMSIZ, open_packet, open_tap
from node.state import model

if TYPE_CHECKING:
    from node.server import VpnServer

log = logging.getLogger(__name__)

RETRY_INTERVAL_S = 3.0
TAP_PREFIX = "tap_"
OFFLINE_REASON = "the Virtual Hub was stopped by the administrator"
TYPE_CHANGED_REASON = "the Virtual Hub's type changed: reconnect through the cluster controller"


def device_name(device: str, tap: bool) -> str:
    """The kernel interface a bridge uses: `tap_<lower name>` for TAP mode,
    else the NIC name as given."""
    return TAP_PREFIX + device.strip().lower() if tap else device


def bridge_key(bridge: model.Bridge) -> str:
    """Identity of a configured bridge: its kernel device (one bridge per device)."""
    return device_name(bridge.device, bridge.tap)


def eth_supported() -> bool:
    """Whether this process may bridge at all: SoftEther's IsEthSupported on
    Linux is "can I open a raw AF_PACKET socket"."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except (OSError, AttributeError):
        return False
    sock.close()
    return True


class _BridgeSlot:
    """Run-time state of one configured bridge: the instance it is placed on
    (its bridge session and open device live there) and an open in flight."""

    __slots__ = ("config", "key", "instance", "opening", "last_state")

    def __init__(self, config: model.Bridge) -> None:
        self.config = config
        self.key = bridge_key(config)
        self.instance: RunningHub | None = None
        self.opening: asyncio.Task | None = None
        self.last_state = ""


class DataPlane:
    """Hub instances and local bridges of one vpnd, following its config."""

    def __init__(self, server: "VpnServer", *, retry_interval_s: float = RETRY_INTERVAL_S) -> None:
        self.server = server
        self.retry_interval_s = retry_interval_s
        self._slots: dict[str, _BridgeSlot] = {}
        self._named: dict[str, int] = {}      # lower-case hub → session names given out
        self._tasks: set[asyncio.Task] = set()
        self._retry: asyncio.Task | None = None
        self._running = False

    # ---- life ------------------------------------------------------------------

    async def start(self) -> None:
        """Create the instances and open the bridges of the current config,
        then follow config changes."""
        self._running = True
        self._apply(self.server.state.config)
        self.server.state.watch(self._on_config)
        await self.settle()
        self._retry = asyncio.create_task(self._retry_loop(), name="bridge-retry")

    async def stop(self) -> None:
        """Close every session, bridge and hub instance (bounded: each session
        close is awaited at most a few seconds)."""
        self._running = False
        if self._retry is not None:
            self._retry.cancel()
            await asyncio.gather(self._retry, return_exceptions=True)
        for slot in self._slots.values():
            self._close_slot(slot)
        self._slots.clear()
        closing: list[asyncio.Task] = []
        for instance in self.server.hubs.values():
            closing += self._stop_instance(instance, "the VPN server is shutting down")
        self.server.hubs.clear()
        pending = [*closing, *self._tasks]
        if pending:
            done, still = await asyncio.wait(pending, timeout=5.0)
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)

    async def settle(self) -> None:
        """Wait until no bridge is being opened (tests and start-up use it)."""
        while True:
            opening = [s.opening for s in self._slots.values() if s.opening is not None]
            if not opening:
                return
            await asyncio.gather(*opening, return_exceptions=True)

    # ---- reconciliation ------------------------------------------------------------

    def refresh(self) -> None:
        """Re-run placement against the current config: for inputs other than
        the config (cluster placement) that change which hubs run here."""
        if self._running:
            self._apply(self.server.state.config)

    def _on_config(self, config: model.Server) -> None:
        if self._running:
            self._apply(config)

    def _apply(self, config: model.Server) -> None:
        """Bring instances and bridges in line with `config` (synchronous; opening
        devices continues in tasks)."""
        instances = self.server.hubs
        for key, running in instances.items():
            # read before sync_instances: an instance restarted there goes on counting
            self._named[key] = running.sessions_named
        created, removed = sync_instances(instances, hosted_hubs(config, self.server.dynamic_instances),
                                          self._new_instance)
        for instance in removed:
            restarted = instance.name.lower() in instances
            log.info("hub %s %s", instance.name, "restarted: its type changed" if restarted else "stopped")
            self._tasks.update(self._stop_instance(instance, TYPE_CHANGED_REASON if restarted else OFFLINE_REASON))
        for instance in created:
            instance.start()
            log.info("hub %s started", instance.name)
        wanted = {bridge_key(b): b for b in config.bridges}
        for key in list(self._slots):
            slot = self._slots[key]
            if key not in wanted or wanted[key].hub.lower() != slot.config.hub.lower():
                self._close_slot(slot)
                del self._slots[key]
        for key, conf in wanted.items():
            slot = self._slots.setdefault(key, _BridgeSlot(conf))
            self._place(slot)

    def _new_instance(self, name: str) -> RunningHub:
        return RunningHub(name, sessions_before=self._named.get(name.lower(), 0))

    def _stop_instance(self, instance: RunningHub, reason: str) -> list[asyncio.Task]:
        tasks = instance.close_sessions(reason)
        for key in list(instance.bridges):
            port = instance.remove_bridge(key)
            if port is not None:
                port.close()
        instance.close()
        for task in tasks:
            task.add_done_callback(self._tasks.discard)
        return tasks

    def _place(self, slot: _BridgeSlot) -> None:
        """Put `slot`'s bridge session on its hub's instance (if it runs here)
        and start opening its device unless it is open and working."""
        instance = self.server.running_hub(slot.config.hub)
        if slot.instance is not instance:
            self._close_slot(slot)
            slot.instance = instance
        if instance is None:
            self._note(slot, "offline", f"hub {slot.config.hub} is not running here")
            return
        session = instance.place_bridge(slot.key, slot.config.device)
        if session.port is not None and not session.port.active:
            self._note(slot, "inactive", f"device {slot.key} stopped working: {session.port.last_error}")
            port = instance.detach_bridge(slot.key)
            if port is not None:
                port.close()
        if session.port is None and slot.opening is None and self._running:
            task = asyncio.ensure_future(self._open(slot, instance))
            slot.opening = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _open(self, slot: _BridgeSlot, instance: RunningHub) -> None:
        conf = slot.config
        me = asyncio.current_task()
        try:
            device = await (open_tap(slot.key) if conf.tap else open_packet(slot.key))
        except Exception as exc:   # DeviceError, or a netlink surprise: the same for the operator
            self._note(slot, f"error:{exc.errno if isinstance(exc, OSError) else 0}",
                       f"cannot open {'TAP device' if conf.tap else 'interface'} {slot.key} "
                       f"for hub {conf.hub}: {exc}; retrying every {self.retry_interval_s:g} s")
            return
        finally:
            if slot.opening is me:
                slot.opening = None
        session = instance.bridges.get(slot.key)
        if (slot.instance is not instance or instance.closed or not self._running
                or self._slots.get(slot.key) is not slot or session is None or session.port is not None):
            device.close()   # the config changed while the device was being opened
            return
        port = LocalBridge(instance.hub, device, name=session.name)
        try:
            port.start()
        except BaseException:
            device.close()
            raise
        instance.attach_bridge(slot.key, port)
        self._note(slot, "active", f"local bridge {slot.key} <-> hub {conf.hub} is operating ({session.name})")

    def _close_slot(self, slot: _BridgeSlot) -> None:
        """End the slot's bridge session on its instance and close its device.
        An open in flight is not cancelled (a TAP fd could leak mid-setup): it
        finishes, sees the slot moved on, and closes what it opened."""
        slot.opening = None
        if slot.instance is not None:
            port = slot.instance.remove_bridge(slot.key)
            if port is not None:
                port.close()
                self._note(slot, "closed", f"local bridge {slot.key} closed")

    def _note(self, slot: _BridgeSlot, state: str, text: str) -> None:
        if slot.last_state != state:
            slot.last_state = state
            (log.warning if state.startswith(("error", "inactive")) else log.info)("%s", text)

    async def _retry_loop(self) -> None:
        while self._running:
            await asyncio.sleep(self.retry_interval_s)
            for slot in list(self._slots.values()):
                try:
                    self._place(slot)
                except Exception:  # keep retrying the other bridges
                    log.exception("local bridge %s: retry failed", slot.key)


def bridge_status(server: "VpnServer", bridge: model.Bridge) -> tuple[bool, bool]:
    """(Online, Active) of a configured bridge, as EnumLocalBridge shows them:
    Online = its bridge session exists on a running hub, Active = its device is open."""
    instance = server.running_hub(bridge.hub)
    if instance is None:
        return False, False
    session = instance.bridges.get(bridge_key(bridge))
    return session is not None, session is not None and session.active


def check_device_name(device: str, tap: bool) -> str:
    """Validate a bridge's device name; returns it stripped. Raises ValueError
    naming the rule broken."""
    name = device.strip()
    kernel = device_name(name, tap)
    if not name:
        raise ValueError("empty device name")
    if len(kernel.encode()) >= IFNAMSIZ:
        raise ValueError(f"device name {kernel!r} is longer than {IFNAMSIZ - 1} bytes"
                         + (" (TAP names get the prefix 'tap_')" if tap else ""))
    if any(c in kernel for c in "/:\0") or any(c.isspace() for c in kernel) or kernel in (".", ".."):
        raise ValueError(f"{kernel!r} is not a valid interface name")
    if tap and not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"a TAP device name uses letters, digits, '-' and '_' only: {name!r}")
    return name

