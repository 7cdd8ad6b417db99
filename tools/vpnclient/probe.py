"""ARP and ping over a UserspaceClient: reachability and round trips.

For tests and drills: `arp_resolve` asks who has an address (broadcast
through the hub) and returns the MAC that answered; `ping` sends ICMP echo
requests one at a time and returns each round trip (None for a lost one).
Frames that are not the awaited answer are skipped. Every wait is bounded
by `timeout_s`; nothing loops without a deadline.
"""

from __future__ import annotations

import asyncio
import time

from tools.vpnclient import frames as fr


async def _await_frame(client, match, timeout_s: float):
    """The first received frame for which match(frame) is not None."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            frame = await client.receive(left)
        except asyncio.TimeoutError:
            return None
        got = match(frame)
        if got is not None:
            return got


ARP_RETRY_S = 1.0  # as a host's ARP does: ask again each second until the deadline


async def arp_resolve(client, src_ip: str, dst_ip: str, timeout_s: float = 2.0) -> bytes | None:
    """The MAC that owns `dst_ip`, or None if nobody answered in time.
    The request is repeated every ARP_RETRY_S: a hub may drop the first one
    while the other session is still being attached."""
    def match(frame: bytes):
        a = fr.parse_arp(frame)
        if a and a.op == fr.ARP_REPLY and str(a.sender_ip) == dst_ip:
            return a.sender_mac
        return None

    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        await client.send_frames([fr.arp_request(client.mac, src_ip, dst_ip)])
        mac = await _await_frame(client, match, min(ARP_RETRY_S, left))
        if mac is not None:
            return mac
    return None


async def ping(client, src_ip: str, dst_ip: str, *, count: int = 3, dst_mac: bytes | None = None,
               timeout_s: float = 2.0, ident: int = 0x5650, payload: bytes = b"vpncluster-probe") -> list[float | None]:
    """Round trips in seconds of `count` pings (None = no reply in `timeout_s`).
    Resolves `dst_mac` with ARP first unless given; all None if that fails."""
    if dst_mac is None:
        dst_mac = await arp_resolve(client, src_ip, dst_ip, timeout_s)
        if dst_mac is None:
            return [None] * count
    rtts: list[float | None] = []
    for seq in range(count):
        t0 = time.monotonic()
        await client.send_frames([fr.icmp_echo(client.mac, dst_mac, src_ip, dst_ip, ident=ident, seq=seq,
                                               payload=payload)])

        def match(frame: bytes, seq=seq):
            e = fr.parse_echo(frame)
            return True if (e and e.reply and e.ident == ident and e.seq == seq and e.payload == payload) else None
        ok = await _await_frame(client, match, timeout_s)
        rtts.append(time.monotonic() - t0 if ok else None)
    return rtts
