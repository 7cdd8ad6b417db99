"""tools/vpndrill/lab/nscluster.py without namespaces: a TAP client's pings
read back from ping(8)'s -D -O output."""

from __future__ import annotations

from pathlib import Path

from tools.vpndrill.lab.nscluster import PING_INTERVAL_S, TapClient


def test_pings_from_ping_output_answered_missed_and_late(tmp_path: Path):
    c = TapClient("c001", "OFFICE", lab=None, ns="x", tmp=tmp_path, tap_cidr="10.99.0.1/24",  # type: ignore[arg-type]
                  target="10.99.0.254")
    c.ping_log.write_text(
        "PING 10.99.0.254 (10.99.0.254) 56(84) bytes of data.\n"
        "[100.000000] 64 bytes from 10.99.0.254: icmp_seq=1 ttl=64 time=0.51 ms\n"
        "[100.400000] no answer yet for icmp_seq=2\n"
        "[100.600000] no answer yet for icmp_seq=3\n"
        "[100.650000] 64 bytes from 10.99.0.254: icmp_seq=3 ttl=64 time=450 ms\n"  # late, but answered
        "[100.800000] 64 bytes from 10.99.0.254: icmp_seq=4 ttl=64 time=0.4 ms\n"
        "--- 10.99.0.254 ping statistics ---\n")
    pings = c.pings()
    assert [ok for _, ok in pings] == [True, False, True, True]
    assert pings[1][0] == 100.4 - PING_INTERVAL_S  # a miss is reported one interval after its send
    assert TapClient("c2", "H", lab=None, ns="x", tmp=tmp_path / "none", tap_cidr="", target=None  # type: ignore[arg-type]
                     ).pings() == []
