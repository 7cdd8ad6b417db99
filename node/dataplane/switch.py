"""The Virtual Hub's forwarding core: a learning Ethernet switch, sans-IO.

Algorithm (per frame, `Switch.forward`):
  1. Learn: the source MAC (keyed with its 802.1Q VLAN id, as SoftEther's
     MAC table is) is bound to the input port. A MAC seen on another port
     moves to this one, and its created/updated times restart (SoftEther's
     `UPDATE_FDB` does the same). A frame whose source is new while the
     table is full is dropped, after one purge of aged entries -- SoftEther
     discards such frames too, so a full table cannot be churned by a flood
     of forged sources.
  2. Forward: a broadcast/multicast destination (I/G bit set) or an unknown
     (or aged) unicast destination is flooded to every port except the input
     port; a known unicast goes to its one port; a destination learned on
     the input port itself is dropped (never hair-pinned), and so is a flood
     with no other port; both count as `dropped_no_destination`.
  3. IP table: an ARP sender address or an IPv4 source address is bound to
     the input port; DHCP packets are not learned from, but a DHCP ACK binds
     its `yiaddr` to the port owning the client MAC with `DhcpAllocated` set
     (Hub.c's DHCP snooping). An IP seen on another port moves.

Invariants: a MAC/IP entry always names a port that is present; removing a
port removes its entries; no frame is ever returned to its input port.

Numbers (SoftEther Cedar.h): MAC entries age after 600 s without a frame,
IP entries after 60 s (300 s when DHCP-allocated); each table holds at most
65,536 entries. When the IP table is full the oldest entry is evicted
(SoftEther's `DeleteOldIpTableEntry`), unlike the MAC table which drops.

Not done here (SoftEther policies): CheckMac/CheckIP 13 s exclusivity,
per-session MaxMac/MaxIP, IPv6 address learning.

Cost: `forward` returns tuples cached per port (no allocation per frame);
a port's flood tuple is made at its first flood after a join or leave, so a
join costs O(ports), not O(ports^2).
Flood send counters are derived, not incremented per receiving port: a
port's flooded-to-it totals are the hub's flood totals since it joined minus
the floods it originated itself, so a flood costs O(1) regardless of the
number of ports. Times are whatever monotonic `now` the caller passes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Hashable, Iterable

MAC_EXPIRE_S = 600.0
IP_EXPIRE_S = 60.0
IP_EXPIRE_DHCP_S = 300.0
MAX_MAC_ENTRIES = 65536
MAX_IP_ENTRIES = 65536
# SoftEther purges aged MAC entries at most once a second (OLD_MAC_ADDRESS_ENTRY_FLUSH_INTERVAL).
PURGE_INTERVAL_S = 1.0

_NOTHING: tuple = ()
_TPID_8021Q = b"\x81\x00"
_ETH_IPV4 = b"\x08\x00"
_ETH_ARP = b"\x08\x06"
_ARP_ETH_IPV4 = b"\x00\x01\x08\x00\x06\x04"  # htype 1, ptype IPv4, hlen 6, plen 4
_DHCP_COOKIE = b"\x63\x82\x53\x63"
_IP_ZERO = b"\x00\x00\x00\x00"
_IP_BCAST = b"\xff\xff\xff\xff"


class UnknownPort(KeyError):
    """Raised by port operations naming a port the switch does not have."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Traffic:
    """SoftEther's TRAFFIC structure for one port, seen from the hub.

    recv = frames the hub received from the port, send = frames the hub
    sent to it; broadcast means the destination MAC has the I/G bit set."""

    recv_broadcast_bytes: int
    recv_broadcast_count: int
    recv_unicast_bytes: int
    recv_unicast_count: int
    send_broadcast_bytes: int
    send_broadcast_count: int
    send_unicast_bytes: int
    send_unicast_count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MacTableItem:
    """One EnumMacTable row (times are the caller's monotonic seconds)."""

    key: int
    session_name: str
    mac_address: bytes
    vlan_id: int
    created_time: float
    updated_time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class IpTableItem:
    """One EnumIpTable row (times are the caller's monotonic seconds)."""

    key: int
    session_name: str
    ip_address: bytes
    mac_address: bytes
    dhcp_allocated: bool
    created_time: float
    updated_time: float


class _Port:
    __slots__ = ("id", "name", "alone", "others", "rbb", "rbc", "rub", "ruc",
                 "sub", "suc", "fub", "fuc", "base")

    def __init__(self, port_id: Hashable, name: str, base: tuple[int, int, int, int]):
        self.id = port_id
        self.name = name
        self.alone = (port_id,)
        self.others: tuple | None = None  # flood targets; None = to be computed
        # received broadcast/unicast bytes/count; sent unicast bytes/count (direct)
        self.rbb = self.rbc = self.rub = self.ruc = 0
        self.sub = self.suc = 0
        # unknown-unicast floods this port originated (the broadcasts it
        # originated are rbb/rbc), and the hub's flood totals when it joined
        self.fub = self.fuc = 0
        self.base = base


class _MacEntry:
    __slots__ = ("port", "updated", "created", "key", "mac", "vlan")

    def __init__(self, port: _Port, now: float, key: int, mac: bytes, vlan: int):
        self.port = port
        self.updated = now
        self.created = now
        self.key = key
        self.mac = mac
        self.vlan = vlan


class _IpEntry:
    __slots__ = ("port", "updated", "created", "key", "mac", "dhcp")

    def __init__(self, port: _Port, now: float, key: int, mac: bytes, dhcp: bool):
        self.port = port
        self.updated = now
        self.created = now
        self.key = key
        self.mac = mac
        self.dhcp = dhcp


class Switch:
    """Learning L2 switch over opaque, hashable port ids."""

    def __init__(self, *, mac_expire_s: float = MAC_EXPIRE_S, ip_expire_s: float = IP_EXPIRE_S,
                 ip_expire_dhcp_s: float = IP_EXPIRE_DHCP_S, max_mac_entries: int = MAX_MAC_ENTRIES,
                 max_ip_entries: int = MAX_IP_ENTRIES) -> None:
        self.mac_expire_s = mac_expire_s
        self.ip_expire_s = ip_expire_s
        self.ip_expire_dhcp_s = ip_expire_dhcp_s
        self.max_mac_entries = max_mac_entries
        self.max_ip_entries = max_ip_entries
        self._ports: dict[Hashable, _Port] = {}
        self._macs: dict[bytes, _MacEntry] = {}
        self._ips: dict[bytes, _IpEntry] = {}
        # Table keys name entries in DeleteMacTable/DeleteIpTable. A cluster's
        # collective tables list every server's entries together and a
        # delete is offered to every server, so each switch starts at a
        # random key: keys are unique across the cluster, as SoftEther's
        # (pointer values) are in practice.
        self._next_key = random.randrange(1, 0xFFFFFFFF)
        self._last_purge = float("-inf")
        # hub-wide flood totals: broadcast bytes/count, unicast bytes/count
        self._fbb = self._fbc = self._fub = self._fuc = 0
        self.dropped_malformed = 0
        self.dropped_table_full = 0
        self.dropped_no_destination = 0
        """Frames with no port to go to: a flood on a hub with no other port,
        or a known unicast destination on the input port itself."""

    # ---- ports -------------------------------------------------------------

    def add_port(self, port: Hashable, name: str) -> None:
        """Attach a port; `name` is what MAC/IP listings show (SessionName)."""
        if port in self._ports:
            raise ValueError(f"port {name!r} already attached")
        self._ports[port] = _Port(port, name, (self._fbb, self._fbc, self._fub, self._fuc))
        self._rebuild_floods()

    def remove_port(self, port: Hashable) -> None:
        """Detach a port and forget every MAC and IP learned on it."""
        p = self._ports.pop(port, None)
        if p is None:
            raise UnknownPort(port)
        self._macs = {k: e for k, e in self._macs.items() if e.port is not p}
        self._ips = {k: e for k, e in self._ips.items() if e.port is not p}
        self._rebuild_floods()

    def _rebuild_floods(self) -> None:
        # Flood tuples are made on a port's next flood, not here: building all
        # of them on every join/leave was O(ports^2) (12 s for 1000 joins).
        for p in self._ports.values():
            p.others = None

    def _floods(self, p: _Port) -> tuple:
        ids = tuple(self._ports)
        i = ids.index(p.id)
        others = p.others = ids[:i] + ids[i + 1:]
        return others

    def traffic(self, port: Hashable) -> Traffic:
        """Counters of one port (raises UnknownPort)."""
        p = self._ports.get(port)
        if p is None:
            raise UnknownPort(port)
        bbb, bbc, bub, buc = p.base
        return Traffic(
            recv_broadcast_bytes=p.rbb, recv_broadcast_count=p.rbc,
            recv_unicast_bytes=p.rub, recv_unicast_count=p.ruc,
            send_broadcast_bytes=self._fbb - bbb - p.rbb,
            send_broadcast_count=self._fbc - bbc - p.rbc,
            send_unicast_bytes=p.sub + self._fub - bub - p.fub,
            send_unicast_count=p.suc + self._fuc - buc - p.fuc,
        )

    def total_traffic(self) -> Traffic:
        """The sum of `traffic` over every port, in one pass without a record
        per port (a scrape or GetHub of a hub with many sessions)."""
        rbb = rbc = rub = ruc = sub = suc = fub = fuc = bbb = bbc = bub = buc = 0
        for p in self._ports.values():
            rbb += p.rbb
            rbc += p.rbc
            rub += p.rub
            ruc += p.ruc
            sub += p.sub
            suc += p.suc
            fub += p.fub
            fuc += p.fuc
            b = p.base
            bbb += b[0]
            bbc += b[1]
            bub += b[2]
            buc += b[3]
        n = len(self._ports)
        return Traffic(
            recv_broadcast_bytes=rbb, recv_broadcast_count=rbc, recv_unicast_bytes=rub, recv_unicast_count=ruc,
            send_broadcast_bytes=n * self._fbb - bbb - rbb, send_broadcast_count=n * self._fbc - bbc - rbc,
            send_unicast_bytes=sub + n * self._fub - bub - fub, send_unicast_count=suc + n * self._fuc - buc - fuc,
        )

    # ---- the packet path ---------------------------------------------------

    def forward(self, in_port: Hashable, frame: bytes, now: float) -> tuple:
        """Learn from `frame` and return the ports it must go out of.

        Returns a cached tuple (possibly empty: dropped). Raises UnknownPort
        if `in_port` is not attached. Frames shorter than an Ethernet header
        or with a multicast source MAC are dropped and counted in
        `dropped_malformed`. `frame` must be bytes (it is sliced into dict keys)."""
        p = self._ports.get(in_port)
        if p is None:
            raise UnknownPort(in_port)
        size = len(frame)
        if size < 14 or frame[6] & 1:
            # runt, or a group source MAC no station may use (Linux's bridge drops these too)
            self.dropped_malformed += 1
            return _NOTHING
        etype = frame[12:14]
        if etype == _TPID_8021Q and size >= 18:
            tail = frame[14:16]
            vlan = int.from_bytes(tail, "big") & 0xFFF
            etype = frame[16:18]
            l3 = 18
        else:
            vlan = 0
            tail = b""
            l3 = 14
        src = frame[6:12]
        skey = src + tail if vlan else src
        e = self._macs.get(skey)
        if e is None:
            if not self._learn_mac(p, skey, src, vlan, now):
                return _NOTHING
        elif e.port is p:
            e.updated = now
        else:
            e.port = p
            e.created = e.updated = now

        if etype == _ETH_IPV4:
            # fast path: a non-UDP IPv4 frame from an address already bound here
            ie = self._ips.get(frame[l3 + 12:l3 + 16])
            if (ie is not None and ie.port is p and size >= l3 + 20
                    and frame[l3 + 9] != 17 and frame[l3] >> 4 == 4):
                ie.updated = now
                ie.mac = src
            else:
                self._learn_ip(p, frame, etype, l3, src, vlan, now)
        elif etype == _ETH_ARP:
            self._learn_ip(p, frame, etype, l3, src, vlan, now)

        if frame[0] & 1:
            p.rbb += size
            p.rbc += 1
            self._fbb += size
            self._fbc += 1
            others = p.others
            if others is None:
                others = self._floods(p)
            if not others:
                self.dropped_no_destination += 1
            return others
        p.rub += size
        p.ruc += 1
        d = self._macs.get(frame[0:6] + tail if vlan else frame[0:6])
        if d is None or d.updated + self.mac_expire_s <= now:
            p.fub += size
            p.fuc += 1
            self._fub += size
            self._fuc += 1
            others = p.others
            if others is None:
                others = self._floods(p)
            if not others:
                self.dropped_no_destination += 1
            return others
        q = d.port
        if q is p:
            self.dropped_no_destination += 1
            return _NOTHING
        q.sub += size
        q.suc += 1
        return q.alone

    def forward_batch(self, in_port: Hashable, frames: Iterable[bytes], now: float) -> dict:
        """Forward many frames from one port: {out_port: [frames in order]}."""
        out: dict = {}
        fwd = self.forward
        get = out.get
        for f in frames:
            for q in fwd(in_port, f, now):
                lst = get(q)
                if lst is None:
                    out[q] = [f]
                else:
                    lst.append(f)
        return out

    def _learn_mac(self, p: _Port, skey: bytes, src: bytes, vlan: int, now: float) -> bool:
        if len(self._macs) >= self.max_mac_entries:
            if now - self._last_purge >= PURGE_INTERVAL_S:
                self._purge_macs(now)
            if len(self._macs) >= self.max_mac_entries:
                self.dropped_table_full += 1
                return False
        self._macs[skey] = _MacEntry(p, now, self._take_key(), src, vlan)
        return True

    def _take_key(self) -> int:
        k = self._next_key
        self._next_key = k + 1 if k < 0xFFFFFFFF else 1
        return k

    def _learn_ip(self, p: _Port, frame: bytes, etype: bytes, l3: int, src: bytes,
                  vlan: int, now: float) -> None:
        if etype == _ETH_ARP:
            if frame[l3:l3 + 6] != _ARP_ETH_IPV4 or len(frame) < l3 + 28:
                return
            ip = frame[l3 + 14:l3 + 18]
            self._bind_ip(p, ip, src, False, now)
            return
        if len(frame) < l3 + 20 or frame[l3] >> 4 != 4:
            return
        if frame[l3 + 9] == 17:  # UDP: DHCP is not learned from, only snooped
            ihl = (frame[l3] & 0x0F) * 4
            u = l3 + ihl
            ports = frame[u:u + 4]
            if ports == b"\x00\x43\x00\x44" or ports == b"\x00\x44\x00\x43":
                if ports[1] == 0x43:
                    self._snoop_dhcp_ack(frame, u + 8, vlan, now)
                return
        self._bind_ip(p, frame[l3 + 12:l3 + 16], src, False, now)

    def _bind_ip(self, p: _Port, ip: bytes, mac: bytes, dhcp: bool, now: float) -> None:
        if ip == _IP_ZERO or ip == _IP_BCAST:
            return
        e = self._ips.get(ip)
        if e is not None:
            if e.port is not p:
                e.port = p
                e.created = now
                e.dhcp = dhcp
            elif dhcp:
                e.dhcp = True
            e.updated = now
            e.mac = mac
            return
        if len(self._ips) >= self.max_ip_entries:
            self._purge_ips(now)
            if len(self._ips) >= self.max_ip_entries:
                # insertion order = creation order: evict the oldest entry
                del self._ips[next(iter(self._ips))]
        self._ips[ip] = _IpEntry(p, now, self._take_key(), mac, dhcp)

    def _snoop_dhcp_ack(self, frame: bytes, b: int, vlan: int, now: float) -> None:
        # BOOTP: op(1) htype(1) hlen(1) ... yiaddr@16 chaddr@28 cookie@236 options@240
        if len(frame) < b + 240 or frame[b] != 2 or frame[b + 1] != 1 or frame[b + 2] != 6:
            return
        if frame[b + 236:b + 240] != _DHCP_COOKIE or _dhcp_message_type(frame, b + 240) != 5:
            return
        chaddr = frame[b + 28:b + 34]
        owner = self._macs.get(chaddr + vlan.to_bytes(2, "big") if vlan else chaddr)
        if owner is not None:
            self._bind_ip(owner.port, frame[b + 16:b + 20], chaddr, True, now)

    # ---- timers and listings ------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Drop aged MAC and IP entries."""
        self._purge_macs(now)
        self._purge_ips(now)

    def _purge_macs(self, now: float) -> None:
        self._last_purge = now
        limit = now - self.mac_expire_s
        old = [k for k, e in self._macs.items() if e.updated <= limit]
        for k in old:
            del self._macs[k]

    def _purge_ips(self, now: float) -> None:
        plain, dhcp = now - self.ip_expire_s, now - self.ip_expire_dhcp_s
        old = [k for k, e in self._ips.items() if e.updated <= (dhcp if e.dhcp else plain)]
        for k in old:
            del self._ips[k]

    def mac_table(self) -> list[MacTableItem]:
        return [MacTableItem(key=e.key, session_name=e.port.name, mac_address=e.mac,
                             vlan_id=e.vlan, created_time=e.created, updated_time=e.updated)
                for e in self._macs.values()]

    def ip_table(self) -> list[IpTableItem]:
        return [IpTableItem(key=e.key, session_name=e.port.name, ip_address=ip, mac_address=e.mac,
                            dhcp_allocated=e.dhcp, created_time=e.created, updated_time=e.updated)
                for ip, e in self._ips.items()]

    def delete_mac(self, key: int) -> bool:
        """DeleteMacTable: remove the entry with this key; False if absent."""
        return _delete_by_key(self._macs, key)

    def delete_ip(self, key: int) -> bool:
        """DeleteIpTable: remove the entry with this key; False if absent."""
        return _delete_by_key(self._ips, key)

    @property
    def num_mac_entries(self) -> int:
        return len(self._macs)

    @property
    def num_ip_entries(self) -> int:
        return len(self._ips)


def _delete_by_key(table: dict, key: int) -> bool:
    for k, e in table.items():
        if e.key == key:
            del table[k]
            return True
    return False


def _dhcp_message_type(frame: bytes, i: int) -> int | None:
    """Value of DHCP option 53 in the options starting at `i`, or None."""
    end = len(frame)
    while i < end:
        code = frame[i]
        if code == 255:
            return None
        if code == 0:
            i += 1
            continue
        if i + 1 >= end:
            return None
        n = frame[i + 1]
        if code == 53 and n == 1 and i + 2 < end:
            return frame[i + 2]
        i += 2 + n
    return None
