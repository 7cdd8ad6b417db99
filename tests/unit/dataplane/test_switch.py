"""Tests for node/dataplane/switch.py: frames are built by hand."""

import dataclasses
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.dataplane.switch import Switch, Traffic, UnknownPort

A, B, C = (bytes.fromhex(x) for x in ("020000000001", "020000000002", "020000000003"))
BCAST = b"\xff" * 6
MCAST = bytes.fromhex("01005e000001")


def eth(dst, src, etype=0x88B5, payload=b"x" * 46, vlan=None):
    tag = b"" if vlan is None else struct.pack("!HH", 0x8100, vlan)
    return dst + src + tag + struct.pack("!H", etype) + payload


def arp(src_mac, src_ip, dst_ip, op=1):
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + src_mac + bytes(src_ip) + bytes(6) + bytes(dst_ip)
    return eth(BCAST, src_mac, 0x0806, body + bytes(18))


def ipv4(dst_mac, src_mac, src_ip, dst_ip, proto=1, l4=b"\x00" * 8, vlan=None):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0, bytes(src_ip), bytes(dst_ip))
    return eth(dst_mac, src_mac, 0x0800, hdr + l4, vlan=vlan)


def dhcp_reply(server_mac, client_mac, server_ip, yiaddr, msg_type=5):
    bootp = bytearray(240)
    bootp[0:3] = b"\x02\x01\x06"
    bootp[16:20] = bytes(yiaddr)
    bootp[28:34] = client_mac
    bootp[236:240] = b"\x63\x82\x53\x63"
    options = bytes([53, 1, msg_type, 0, 54, 4]) + bytes(server_ip) + b"\xff"
    payload = bytes(bootp) + options
    udp = struct.pack("!HHHH", 67, 68, 8 + len(payload), 0) + payload
    return ipv4(client_mac, server_mac, server_ip, yiaddr, proto=17, l4=udp)


def dhcp_request(client_mac):
    bootp = bytearray(240)
    bootp[0:3] = b"\x01\x01\x06"
    bootp[28:34] = client_mac
    bootp[236:240] = b"\x63\x82\x53\x63"
    payload = bytes(bootp) + bytes([53, 1, 3, 255])
    udp = struct.pack("!HHHH", 68, 67, 8 + len(payload), 0) + payload
    return ipv4(BCAST, client_mac, (0, 0, 0, 0), (255, 255, 255, 255), proto=17, l4=udp)


@pytest.fixture
def sw():
    s = Switch()
    for p in ("p1", "p2", "p3"):
        s.add_port(p, p.upper())
    return s


def test_unknown_unicast_and_broadcast_flood_to_all_other_ports(sw):
    assert set(sw.forward("p1", eth(B, A), 0.0)) == {"p2", "p3"}
    assert set(sw.forward("p2", eth(BCAST, B), 0.0)) == {"p1", "p3"}
    assert set(sw.forward("p3", eth(MCAST, C), 0.0)) == {"p1", "p2"}


def test_learned_unicast_goes_to_one_port(sw):
    sw.forward("p1", eth(BCAST, A), 0.0)
    sw.forward("p2", eth(BCAST, B), 0.0)
    assert sw.forward("p2", eth(A, B), 1.0) == ("p1",)
    assert sw.forward("p1", eth(B, A), 1.0) == ("p2",)


def test_no_hairpin_to_mac_learned_on_input_port(sw):
    sw.forward("p1", eth(BCAST, A), 0.0)
    sw.forward("p1", eth(BCAST, C), 0.0)
    assert sw.forward("p1", eth(A, C), 1.0) == ()
    assert sw.dropped_no_destination == 1


def test_a_flood_with_no_other_port_counts_as_no_destination():
    lone = Switch()
    lone.add_port("p1", "P1")
    assert lone.forward("p1", eth(BCAST, A), 0.0) == ()
    assert lone.forward("p1", eth(B, A), 0.0) == ()   # unknown unicast: a flood too
    assert lone.dropped_no_destination == 2
    lone.add_port("p2", "P2")
    assert lone.forward("p1", eth(BCAST, A), 1.0) == ("p2",) and lone.dropped_no_destination == 2


def test_mac_move_to_new_port(sw):
    sw.forward("p1", eth(BCAST, A), 0.0)
    sw.forward("p2", eth(BCAST, B), 0.0)
    assert sw.forward("p2", eth(A, B), 1.0) == ("p1",)
    sw.forward("p3", eth(BCAST, A), 2.0)
    assert sw.forward("p2", eth(A, B), 3.0) == ("p3",)
    [entry] = [e for e in sw.mac_table() if e.mac_address == A]
    assert entry.session_name == "P3"
    assert entry.created_time == 2.0


def test_vlan_is_part_of_the_mac_key(sw):
    sw.forward("p1", eth(BCAST, A, vlan=10), 0.0)
    sw.forward("p2", eth(BCAST, A), 0.0)
    rows = sorted((e.vlan_id, e.session_name) for e in sw.mac_table())
    assert rows == [(0, "P2"), (10, "P1")]
    assert sw.forward("p3", eth(A, C, vlan=10), 1.0) == ("p1",)
    assert sw.forward("p3", eth(A, C), 1.0) == ("p2",)


def test_aging_by_moving_now(sw):
    sw.forward("p1", eth(BCAST, A), 0.0)
    sw.forward("p1", eth(BCAST, A), 100.0)  # refresh
    assert sw.forward("p2", eth(A, B), 699.0) == ("p1",)
    # not refreshed since 100 s: aged at 700 s even before the timer runs
    assert set(sw.forward("p2", eth(A, B), 700.0)) == {"p1", "p3"}
    sw.handle_timer(700.0)
    assert A not in {e.mac_address for e in sw.mac_table()}
    assert B in {e.mac_address for e in sw.mac_table()}
    sw.handle_timer(1300.0)
    assert sw.num_mac_entries == 0


def test_mac_table_limit_drops_frames_from_new_sources():
    s = Switch(max_mac_entries=2)
    s.add_port(1, "one")
    s.add_port(2, "two")
    assert s.forward(1, eth(BCAST, A), 0.0) == (2,)
    assert s.forward(1, eth(BCAST, B), 0.0) == (2,)
    assert s.forward(2, eth(BCAST, C), 0.0) == ()
    assert s.dropped_table_full == 1
    assert s.num_mac_entries == 2
    # known sources still pass; after aging there is room again
    assert s.forward(1, eth(BCAST, A), 1.0) == (2,)
    assert s.forward(2, eth(BCAST, C), 600.5) == (1,)  # B aged out, A did not
    assert {e.mac_address for e in s.mac_table()} == {A, C}


def test_runt_frame_and_group_source_are_dropped_and_counted(sw):
    assert sw.forward("p1", b"\x00" * 13, 0.0) == ()
    assert sw.forward("p1", eth(A, MCAST), 0.0) == ()
    assert sw.dropped_malformed == 2
    assert sw.mac_table() == []


def test_unknown_port_is_a_typed_error(sw):
    with pytest.raises(UnknownPort):
        sw.forward("nope", eth(BCAST, A), 0.0)
    with pytest.raises(UnknownPort):
        sw.remove_port("nope")
    with pytest.raises(ValueError):
        sw.add_port("p1", "again")


def test_remove_port_removes_its_entries_and_stops_flooding_to_it(sw):
    sw.forward("p1", arp(A, (10, 0, 0, 1), (10, 0, 0, 2)), 0.0)
    sw.forward("p2", arp(B, (10, 0, 0, 2), (10, 0, 0, 1)), 0.0)
    sw.remove_port("p1")
    assert {e.mac_address for e in sw.mac_table()} == {B}
    assert {e.ip_address for e in sw.ip_table()} == {bytes((10, 0, 0, 2))}
    assert sw.forward("p2", eth(A, B), 1.0) == ("p3",)


def test_flood_targets_follow_joins_and_leaves_after_being_used(sw):
    assert sw.forward("p1", eth(BCAST, A), 0.0) == ("p2", "p3")
    sw.add_port("p4", "P4")
    assert sw.forward("p1", eth(BCAST, A), 0.0) == ("p2", "p3", "p4")
    assert sw.forward("p4", eth(B, C), 0.0) == ("p1", "p2", "p3")  # unknown unicast floods too
    sw.remove_port("p2")
    sw.remove_port("p3")
    assert sw.forward("p1", eth(BCAST, A), 0.0) == ("p4",)
    sw.remove_port("p4")
    assert sw.forward("p1", eth(BCAST, A), 0.0) == ()


def test_ip_learning_from_arp_and_ipv4(sw):
    sw.forward("p1", arp(A, (10, 0, 0, 1), (10, 0, 0, 2)), 1.0)
    sw.forward("p2", ipv4(A, B, (10, 0, 0, 2), (10, 0, 0, 1)), 2.0)
    rows = {e.ip_address: e for e in sw.ip_table()}
    assert rows[bytes((10, 0, 0, 1))].session_name == "P1"
    assert rows[bytes((10, 0, 0, 1))].mac_address == A
    assert rows[bytes((10, 0, 0, 2))].session_name == "P2"
    assert rows[bytes((10, 0, 0, 2))].created_time == 2.0
    assert not any(e.dhcp_allocated for e in rows.values())
    # refresh updates the time, a move to another port restarts it
    sw.forward("p2", ipv4(A, B, (10, 0, 0, 2), (10, 0, 0, 1)), 5.0)
    sw.forward("p3", ipv4(A, C, (10, 0, 0, 1), (10, 0, 0, 2)), 6.0)
    rows = {e.ip_address: e for e in sw.ip_table()}
    assert (rows[bytes((10, 0, 0, 2))].created_time, rows[bytes((10, 0, 0, 2))].updated_time) == (2.0, 5.0)
    assert (rows[bytes((10, 0, 0, 1))].session_name, rows[bytes((10, 0, 0, 1))].created_time) == ("P3", 6.0)


def test_ip_learning_from_vlan_tagged_ipv4(sw):
    sw.forward("p1", ipv4(B, A, (10, 9, 0, 1), (10, 9, 0, 2), vlan=7), 0.0)
    assert [e.ip_address for e in sw.ip_table()] == [bytes((10, 9, 0, 1))]


def test_zero_and_broadcast_sources_and_dhcp_requests_are_not_learned(sw):
    sw.forward("p1", dhcp_request(A), 0.0)
    sw.forward("p1", ipv4(BCAST, A, (255, 255, 255, 255), (10, 0, 0, 9)), 0.0)
    assert sw.ip_table() == []


def test_dhcp_ack_marks_allocation_on_the_client_port(sw):
    sw.forward("p1", dhcp_request(A), 0.0)  # learns the client MAC on p1
    sw.forward("p2", dhcp_reply(B, A, (10, 0, 0, 254), (10, 0, 0, 50)), 1.0)
    rows = {e.ip_address: e for e in sw.ip_table()}
    assert set(rows) == {bytes((10, 0, 0, 50))}  # the server's own IP is not learned from DHCP
    e = rows[bytes((10, 0, 0, 50))]
    assert (e.session_name, e.dhcp_allocated, e.mac_address) == ("P1", True, A)
    # DHCP entries live 300 s, plain ones 60 s
    sw.forward("p3", arp(C, (10, 0, 0, 7), (10, 0, 0, 50)), 1.0)
    sw.handle_timer(62.0)
    assert {e.ip_address for e in sw.ip_table()} == {bytes((10, 0, 0, 50))}
    sw.handle_timer(301.0)
    assert sw.ip_table() == []


def test_dhcp_offer_and_unknown_client_are_ignored(sw):
    sw.forward("p1", dhcp_request(A), 0.0)
    sw.forward("p2", dhcp_reply(B, A, (10, 0, 0, 254), (10, 0, 0, 50), msg_type=2), 1.0)
    sw.forward("p2", dhcp_reply(B, C, (10, 0, 0, 254), (10, 0, 0, 51)), 1.0)
    assert sw.ip_table() == []


def test_truncated_arp_and_ip_do_not_crash(sw):
    full = arp(A, (10, 0, 0, 1), (10, 0, 0, 2))
    ack = dhcp_reply(B, A, (10, 0, 0, 254), (10, 0, 0, 50))
    # options start at 14 + 20 + 8 + 240 = 282; option 53's value is byte 284
    for n in range(14, 285):
        sw.forward("p1", full[:n], 0.0)
        sw.forward("p1", ack[:n], 0.0)
    assert not any(e.dhcp_allocated for e in sw.ip_table())


def test_ip_table_limit_evicts_oldest():
    s = Switch(max_ip_entries=2)
    s.add_port(1, "one")
    s.add_port(2, "two")
    for i, t in ((1, 0.0), (2, 1.0), (3, 2.0)):
        s.forward(1, arp(A, (10, 0, 0, i), (10, 0, 0, 99)), t)
    assert {e.ip_address[3] for e in s.ip_table()} == {2, 3}


def test_delete_by_key(sw):
    sw.forward("p1", arp(A, (10, 0, 0, 1), (10, 0, 0, 2)), 0.0)
    [m] = sw.mac_table()
    [i] = sw.ip_table()
    assert m.key != i.key
    assert sw.delete_ip(i.key) and not sw.delete_ip(i.key)
    assert sw.delete_mac(m.key) and sw.mac_table() == []


def test_keys_differ_between_switches():
    # Two servers of a cluster learning the same host: the collective table
    # lists both entries and a delete by key must name one of them only.
    a, b = Switch(), Switch()
    for s in (a, b):
        s.add_port(1, "one")
        s.forward(1, arp(A, (10, 0, 0, 1), (10, 0, 0, 2)), 0.0)
    keys = {e.key for s in (a, b) for e in (*s.mac_table(), *s.ip_table())}
    assert len(keys) == 4 and all(0 < k <= 0xFFFFFFFF for k in keys)


def test_traffic_counters(sw):
    bc = eth(BCAST, A)                      # 60 bytes, flooded to p2 and p3
    sw.forward("p1", bc, 0.0)
    sw.forward("p2", eth(BCAST, B, payload=b"y" * 86), 0.0)  # 100 bytes
    sw.forward("p2", eth(A, B), 0.0)        # known unicast to p1
    sw.forward("p3", eth(C, A), 0.0)        # A moves to p3; C unknown: flooded as unicast
    sw.add_port("p4", "P4")
    sw.forward("p1", bc, 1.0)               # A moves back; p4 sees this flood only
    t1, t2, t3, t4 = (sw.traffic(p) for p in ("p1", "p2", "p3", "p4"))
    assert (t1.recv_broadcast_count, t1.recv_broadcast_bytes) == (2, 120)
    assert (t1.send_broadcast_count, t1.send_broadcast_bytes) == (1, 100)
    assert (t1.send_unicast_count, t1.send_unicast_bytes) == (2, 120)
    assert (t2.recv_broadcast_count, t2.recv_unicast_count) == (1, 1)
    assert (t2.send_broadcast_count, t2.send_unicast_count) == (2, 1)
    assert (t3.recv_unicast_count, t3.send_broadcast_count, t3.send_unicast_count) == (1, 3, 0)
    assert (t4.send_broadcast_count, t4.send_unicast_count, t4.recv_broadcast_count) == (1, 0, 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["fwd", "fwd", "fwd", "add", "remove"]), st.integers(0, 3),
                          st.integers(0, 4), st.integers(0, 40)), max_size=60))
def test_total_traffic_is_the_sum_over_ports(steps):
    """Ports joining and leaving between floods and unicasts: the one-pass total is the per-port sum."""
    sw = Switch()
    names = [f"p{i}" for i in range(4)]
    macs = [BCAST, A, B, C, bytes((2, 0, 0, 0, 0, 9))]
    present = set(names[:2])
    for port in sorted(present):
        sw.add_port(port, port.upper())
    for op, who, dst, extra in steps:
        port = names[who]
        if op == "add" and port not in present:
            sw.add_port(port, port.upper())
            present.add(port)
        elif op == "remove" and port in present:
            sw.remove_port(port)
            present.discard(port)
        elif op == "fwd" and port in present:
            sw.forward(port, eth(macs[dst], macs[1 + who], payload=b"x" * (46 + extra)), 1.0)
    fields = [f.name for f in dataclasses.fields(Traffic)]
    per_port = [sw.traffic(p) for p in present]
    total = sw.total_traffic()
    assert {f: getattr(total, f) for f in fields} == {f: sum(getattr(t, f) for t in per_port) for f in fields}


def test_forward_batch_groups_frames_per_out_port(sw):
    sw.forward("p2", eth(BCAST, B), 0.0)
    f1, f2, f3 = eth(B, A, payload=b"1" * 46), eth(BCAST, A, payload=b"2" * 46), eth(B, A, payload=b"3" * 46)
    out = sw.forward_batch("p1", [f1, f2, f3], 1.0)
    assert out == {"p2": [f1, f2, f3], "p3": [f2]}
