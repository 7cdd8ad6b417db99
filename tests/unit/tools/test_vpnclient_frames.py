import ipaddress
import struct

from tools.vpnclient import frames as fr

A_MAC, B_MAC = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def test_internet_checksum_of_the_rfc1071_example():
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert fr.checksum(data) == ~0xDDF2 & 0xFFFF
    assert fr.checksum(data + struct.pack("!H", fr.checksum(data))) == 0


def test_arp_request_layout_and_parse():
    f = fr.arp_request(A_MAC, "10.0.0.1", "10.0.0.2")
    assert len(f) == 60 and f[:6] == fr.BROADCAST and f[6:12] == A_MAC and f[12:14] == b"\x08\x06"
    a = fr.parse_arp(f)
    assert (a.op, a.sender_mac, str(a.sender_ip), str(a.target_ip)) == (1, A_MAC, "10.0.0.1", "10.0.0.2")
    assert fr.parse_arp(f[:30]) is None and fr.parse_echo(f) is None


def test_icmp_echo_has_valid_checksums_and_parses_back():
    f = fr.icmp_echo(A_MAC, B_MAC, "10.0.0.1", "10.0.0.2", ident=7, seq=3, payload=b"p" * 56)
    ip = f[14:34]
    assert fr.checksum(ip) == 0 and fr.checksum(f[34:]) == 0
    e = fr.parse_echo(f)
    assert (e.reply, e.src_mac, e.dst_mac, e.ident, e.seq, e.payload) == (False, A_MAC, B_MAC, 7, 3, b"p" * 56)
    assert e.dst_ip == ipaddress.IPv4Address("10.0.0.2")
    assert fr.parse_echo(f[:40]) is None


def test_responder_answers_arp_and_ping_for_its_own_ip_only():
    r = fr.Responder(B_MAC, "10.0.0.2")
    reply = fr.parse_arp(r.handle(fr.arp_request(A_MAC, "10.0.0.1", "10.0.0.2")))
    assert (reply.op, reply.sender_mac, str(reply.sender_ip), str(reply.target_ip)) == (2, B_MAC, "10.0.0.2", "10.0.0.1")
    assert r.handle(fr.arp_request(A_MAC, "10.0.0.1", "10.0.0.9")) is None
    ping = fr.icmp_echo(A_MAC, B_MAC, "10.0.0.1", "10.0.0.2", ident=1, seq=9, payload=b"abc")
    pong = fr.parse_echo(r.handle(ping))
    assert (pong.reply, pong.dst_mac, str(pong.dst_ip), pong.seq, pong.payload) == (True, A_MAC, "10.0.0.1", 9, b"abc")
    assert r.handle(fr.icmp_echo(A_MAC, A_MAC, "10.0.0.1", "10.0.0.2", ident=1, seq=1)) is None  # not our MAC
    assert r.handle(b"\x00" * 10) is None
    assert (r.arp_replies, r.echo_replies) == (1, 1)


def test_random_mac_is_unicast_and_locally_administered():
    for _ in range(50):
        m = fr.random_mac()
        assert m[0] & 1 == 0 and m[0] & 2 == 2
    assert fr.mac_str(A_MAC) == "02:00:00:00:00:01"
