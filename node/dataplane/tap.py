"""Frame devices for local bridges: a new TAP device, or an existing interface.

`open_tap` creates a TAP device with the TUNSETIFF ioctl on /dev/net/tun
(IFF_TAP | IFF_NO_PI: whole Ethernet frames, no packet-info prefix) and sets
it up through pyroute2; the device disappears when its fd closes unless it
was made persistent. `open_packet` attaches to an EXISTING interface with an
AF_PACKET raw socket bound to it (all ethertypes, promiscuous membership so
frames for the other MACs behind the bridge arrive, outgoing frames ignored
so we never re-learn what we sent ourselves), and turns the interface's
offloads off as SoftEther does (`disable_offloads`: merged GRO frames are
too big for any session). SoftEther's `BridgeCreate /TAP:yes|no` chooses
between the same two.

Netlink goes through pyroute2's AsyncIPRoute (its sync IPRoute refuses to
run inside a running event loop), so the openers are coroutines. Devices and
sockets belong to the network namespace of the calling thread.

Both return a `FrameDevice` with a non-blocking fd: one `os.read` gives one
frame, one `os.write` sends one frame. Its `read_frames` drains what is
ready (until EAGAIN, at most max_n per call so one busy device cannot
starve the loop) and `write_frames` writes at once and never queues: a frame
the device cannot take now (EAGAIN, ENOBUFS, too big, down) is dropped and
counted, as a switch drops on a full port; TCP above recovers. Both local
bridges (bridge.py) and vpnclient's TAP port use them. Opening errors are
`DeviceError`.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import socket
import struct
import subprocess

from pyroute2 import AsyncIPRoute

TUN_PATH = "/dev/net/tun"
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFNAMSIZ = 16
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_IGNORE_OUTGOING = getattr(socket, "PACKET_IGNORE_OUTGOING", 23)
# what SoftEther's UnixDisableInterfaceOffload turns off on a bridged NIC
OFFLOAD_FEATURES = ("rx", "tx", "sg", "tso", "ufo", "gso", "gro", "lro",
                    "rxvlan", "txvlan", "ntuple", "rxhash")
ETHTOOL_TIMEOUT_S = 5.0
MAX_FRAME = 65536  # read size: above any MTU, so one read is one whole frame
# errors after which a read round simply ends (the device is still there);
# anything else means it broke or vanished
TRANSIENT_ERRNOS = frozenset({errno.EAGAIN, errno.EINTR, errno.ENETDOWN, errno.ENOBUFS})


class DeviceError(OSError):
    """A TAP device or interface could not be opened or configured.

    Raised by `open_tap` / `open_packet`; the caller reports the bridge as
    offline (SoftEther's EnumLocalBridge `Active_bool` false) and may retry."""


class FrameDevice:
    """An open frame device. `fd` is non-blocking; `close()` is idempotent."""

    __slots__ = ("name", "fd", "tap_mode", "_closer")

    def __init__(self, name: str, fd: int, tap_mode: bool, closer) -> None:
        self.name = name
        self.fd = fd
        self.tap_mode = tap_mode
        self._closer = closer

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            self._closer(fd)

    def read_frames(self, max_n: int) -> tuple[list[bytes], OSError | None]:
        """The frames ready now (at most `max_n`, one read each), and the
        error that ended the round: None (nothing more ready, or max_n read),
        one in TRANSIENT_ERRNOS (momentary: read again at the next wake-up),
        or any other (the device is gone: stop reading it)."""
        fd = self.fd
        read = os.read
        frames: list[bytes] = []
        append = frames.append
        try:
            for _ in range(max_n):
                append(read(fd, MAX_FRAME))
        except BlockingIOError:  # EAGAIN: drained
            pass
        except OSError as e:
            return frames, e
        return frames, None

    def write_frames(self, frames: list[bytes]) -> tuple[int, int]:
        """Write each frame now; returns (frames dropped, bytes written).
        A frame the device refuses (queue full, too big, down) is dropped."""
        fd = self.fd
        write = os.write
        dropped = written = 0
        for frame in frames:
            try:
                written += write(fd, frame)
            except OSError:
                dropped += 1
        return dropped, written

    def __repr__(self) -> str:
        kind = "tap" if self.tap_mode else "packet"
        return f"<FrameDevice {kind} {self.name!r} fd={self.fd}>"


def _check_name(name: str) -> bytes:
    raw = name.encode()
    if not raw or len(raw) >= IFNAMSIZ or b"/" in raw or b"\0" in raw:
        raise DeviceError(errno.EINVAL, f"bad interface name {name!r}")
    return raw


async def _set_up(name: str, mtu: int | None) -> int:
    """Bring `name` up (and set its MTU) through netlink; return its index."""
    async with AsyncIPRoute() as ipr:
        found = await ipr.link_lookup(ifname=name)
        if not found:
            raise DeviceError(errno.ENODEV, f"no interface {name!r}")
        index = found[0]
        if mtu is not None:
            await ipr.link("set", index=index, mtu=mtu)
        await ipr.link("set", index=index, state="up")
        return index


async def open_tap(name: str, *, mtu: int | None = None, up: bool = True,
             persist: bool = False) -> FrameDevice:
    """Create (or re-attach to a persistent) TAP device `name`.

    Raises DeviceError (no /dev/net/tun, no permission, bad name, netlink
    failure); the fd is closed again on any failure."""
    raw = _check_name(name)
    try:
        fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise DeviceError(e.errno, f"cannot open {TUN_PATH}: {e.strerror}") from e
    try:
        ifr = struct.pack(f"{IFNAMSIZ}sH22x", raw, IFF_TAP | IFF_NO_PI)
        res = fcntl.ioctl(fd, TUNSETIFF, ifr)
        actual = res[:IFNAMSIZ].rstrip(b"\0").decode()
        if persist:
            fcntl.ioctl(fd, TUNSETPERSIST, 1)
        if up:
            await _set_up(actual, mtu)
    except DeviceError:
        os.close(fd)
        raise
    except OSError as e:
        os.close(fd)
        raise DeviceError(e.errno, f"cannot create TAP {name!r}: {e.strerror}") from e
    except Exception as e:  # pyroute2 raises its own NetlinkError (an OSError) or others
        os.close(fd)
        raise DeviceError(errno.EIO, f"cannot set up TAP {name!r}: {e}") from e
    return FrameDevice(actual, fd, True, os.close)


async def open_packet(ifname: str, *, promisc: bool = True, up: bool = True,
                      offloads_off: bool = True) -> FrameDevice:
    """Attach to the existing interface `ifname` with an AF_PACKET socket,
    and (`offloads_off`) turn its offloads off as SoftEther does.

    Raises DeviceError (no such interface, not root, ...)."""
    _check_name(ifname)
    try:
        index = await _set_up(ifname, None) if up else socket.if_nametoindex(ifname)
    except DeviceError:
        raise
    except Exception as e:
        raise DeviceError(errno.ENODEV, f"cannot use interface {ifname!r}: {e}") from e
    if offloads_off:
        await disable_offloads(ifname)   # before the socket: a cancel here leaks nothing
    try:
        # protocol 0: receive nothing until bound, so no frame of another interface slips in
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except OSError as e:
        raise DeviceError(e.errno, f"cannot open AF_PACKET socket: {e.strerror}") from e
    try:
        try:
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        except OSError:
            pass  # kernel < 4.20: we then see our own writes; the hub drops them (hair-pin)
        if promisc:
            mreq = struct.pack("iHH8s", index, PACKET_MR_PROMISC, 0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        sock.bind((ifname, ETH_P_ALL))
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise DeviceError(e.errno, f"cannot bind to {ifname!r}: {e.strerror}") from e
    # The socket object owns the fd; closing it also drops the promiscuous membership.
    return FrameDevice(ifname, sock.fileno(), False, lambda _fd, s=sock: s.close())


async def disable_offloads(ifname: str) -> None:
    """Turn the NIC's offloads off (SoftEther's UnixDisableInterfaceOffload,
    also through `ethtool -K`). With GRO/LRO on, AF_PACKET reads merged
    frames of up to 64 KiB, which no VPN session can carry (> 1600 bytes:
    dropped), so TCP from the LAN to VPN clients would stall; with checksum
    offload, frames can leave with checksums never filled in. One call per
    feature, as a feature the NIC cannot change fails a combined call.
    Best effort: without ethtool, or where a feature is fixed, nothing changes."""
    for feature in OFFLOAD_FEATURES:
        try:
            proc = await asyncio.create_subprocess_exec(
                "ethtool", "-K", ifname, feature, "off",
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:
            return  # no ethtool here
        try:
            async with asyncio.timeout(ETHTOOL_TIMEOUT_S):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
