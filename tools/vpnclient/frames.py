"""Hand-built Ethernet frames for userspace sessions: ARP and ICMP echo.

Load tests and drills run sessions without TAP devices; they still need
traffic a hub switches like a real host's: ARP requests (broadcast, so the
hub learns the source MAC and floods), ARP replies and ICMP echo
request/reply (unicast, with correct IPv4 and ICMP checksums so a real
Linux host behind a bridge answers them too). `Responder` plays a tiny
host: it answers ARP requests for its IP and pings to it, which is what
`vpnclient --userspace --ip` does and what gap measurements ping.

Layouts (RFC 826, RFC 791, RFC 792): Ethernet II 14 bytes, ARP for IPv4
28 bytes, IPv4 header 20 bytes (no options), ICMP echo 8 bytes + payload.
Frames shorter than 60 bytes are padded as an Ethernet NIC would.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from dataclasses import dataclass

BROADCAST = b"\xff" * 6
ETH_ARP = 0x0806
ETH_IPV4 = 0x0800
ARP_REQUEST, ARP_REPLY = 1, 2
ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8
MIN_FRAME = 60

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_ICMP = struct.Struct("!BBHHH")


def random_mac() -> bytes:
    """A locally administered unicast MAC (SoftEther's clients use 5E:...)."""
    b = bytearray(os.urandom(6))
    b[0] = (b[0] & 0xFC) | 0x02
    return bytes(b)


def mac_str(mac: bytes) -> str:
    return ":".join(f"{x:02x}" for x in mac)


def _ip(ip: str | ipaddress.IPv4Address) -> bytes:
    return ipaddress.IPv4Address(ip).packed


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pad(frame: bytes) -> bytes:
    return frame + b"\0" * (MIN_FRAME - len(frame)) if len(frame) < MIN_FRAME else frame


def ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return _pad(_ETH.pack(dst, src, ethertype) + payload)


def arp(op: int, sender_mac: bytes, sender_ip, target_mac: bytes, target_ip, dst: bytes) -> bytes:
    body = _ARP.pack(1, ETH_IPV4, 6, 4, op, sender_mac, _ip(sender_ip), target_mac, _ip(target_ip))
    return ethernet(dst, sender_mac, ETH_ARP, body)


def arp_request(src_mac: bytes, src_ip, target_ip) -> bytes:
    """Who has `target_ip`? (broadcast)."""
    return arp(ARP_REQUEST, src_mac, src_ip, b"\0" * 6, target_ip, BROADCAST)


def ipv4(src_ip, dst_ip, proto: int, payload: bytes, ident: int = 0, ttl: int = 64) -> bytes:
    head = _IPV4.pack(0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000, ttl, proto, 0, _ip(src_ip), _ip(dst_ip))
    return head[:10] + struct.pack("!H", checksum(head)) + head[12:] + payload


def icmp_echo(src_mac: bytes, dst_mac: bytes, src_ip, dst_ip, *, ident: int, seq: int,
              payload: bytes = b"", reply: bool = False) -> bytes:
    """An ICMP echo request (or reply) frame."""
    kind = ICMP_ECHO_REPLY if reply else ICMP_ECHO_REQUEST
    head = _ICMP.pack(kind, 0, 0, ident & 0xFFFF, seq & 0xFFFF)
    msg = head[:2] + struct.pack("!H", checksum(head + payload)) + head[4:] + payload
    return ethernet(dst_mac, src_mac, ETH_IPV4, ipv4(src_ip, dst_ip, 1, msg, ident=seq))


@dataclass(frozen=True, slots=True)
class Arp:
    op: int
    sender_mac: bytes
    sender_ip: ipaddress.IPv4Address
    target_ip: ipaddress.IPv4Address


@dataclass(frozen=True, slots=True)
class Echo:
    reply: bool
    src_mac: bytes
    dst_mac: bytes
    src_ip: ipaddress.IPv4Address
    dst_ip: ipaddress.IPv4Address
    ident: int
    seq: int
    payload: bytes


def parse_arp(frame: bytes) -> Arp | None:
    """The ARP-for-IPv4 packet in `frame`, or None."""
    if len(frame) < 42 or _ETH.unpack_from(frame)[2] != ETH_ARP:
        return None
    htype, ptype, hlen, plen, op, smac, sip, _tmac, tip = _ARP.unpack_from(frame, 14)
    if (htype, ptype, hlen, plen) != (1, ETH_IPV4, 6, 4):
        return None
    return Arp(op, smac, ipaddress.IPv4Address(sip), ipaddress.IPv4Address(tip))


def parse_echo(frame: bytes) -> Echo | None:
    """The ICMP echo request/reply in `frame` (checksums not verified), or None."""
    if len(frame) < 42:
        return None
    dst, src, ethertype = _ETH.unpack_from(frame)
    if ethertype != ETH_IPV4 or frame[14] >> 4 != 4:
        return None
    ihl = (frame[14] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, 16)[0]
    if frame[23] != 1 or ihl < 20 or len(frame) < 14 + ihl + 8 or total < ihl + 8:
        return None
    kind, _code, _sum, ident, seq = _ICMP.unpack_from(frame, 14 + ihl)
    if kind not in (ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST):
        return None
    src_ip = ipaddress.IPv4Address(frame[26:30])
    dst_ip = ipaddress.IPv4Address(frame[30:34])
    payload = bytes(frame[14 + ihl + 8:14 + min(total, len(frame) - 14)])
    return Echo(kind == ICMP_ECHO_REPLY, src, dst, src_ip, dst_ip, ident, seq, payload)


class Responder:
    """A minimal host at (`mac`, `ip`): answers ARP requests for `ip` and
    ICMP echo requests to `ip`; everything else is ignored. Counts answers."""

    def __init__(self, mac: bytes, ip) -> None:
        self.mac = mac
        self.ip = ipaddress.IPv4Address(ip)
        self.arp_replies = 0
        self.echo_replies = 0

    def handle(self, frame: bytes) -> bytes | None:
        """The reply frame for `frame`, or None."""
        if len(frame) < 42:
            return None
        ethertype = frame[12] << 8 | frame[13]
        if ethertype == ETH_ARP:
            a = parse_arp(frame)
            if a is None or a.op != ARP_REQUEST or a.target_ip != self.ip:
                return None
            self.arp_replies += 1
            return arp(ARP_REPLY, self.mac, self.ip, a.sender_mac, a.sender_ip, a.sender_mac)
        if ethertype == ETH_IPV4 and frame[0:6] == self.mac:
            e = parse_echo(frame)
            if e is None or e.reply or e.dst_ip != self.ip:
                return None
            self.echo_replies += 1
            return icmp_echo(self.mac, e.src_mac, self.ip, e.src_ip, ident=e.ident, seq=e.seq,
                             payload=e.payload, reply=True)
        return None
