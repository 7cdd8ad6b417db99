"""tools/vpndrill/timeline.py without processes: samples in, the report out."""

from __future__ import annotations

import pytest

from tools.vpndrill.timeline import Move, SessionRow, Timeline, percentile, resolve_sessions

A, B, C = "controller", "member1", "member2"


def feed(tl: Timeline, t: float, listed: set[str], where: dict[str, str | None]) -> None:
    tl.members(t, listed)
    tl.sessions(t, where)


def test_a_kill_times_detection_eviction_and_each_takeover_from_the_fault():
    tl = Timeline()
    feed(tl, 0.0, {A, B, C}, {"s1": C, "s2": C, "s3": B})
    tl.event(1.0, "kill", C)
    feed(tl, 1.1, {A, B, C}, {"s1": None, "s2": C, "s3": B})  # s2's client has not noticed yet
    feed(tl, 1.4, {A, B, C}, {"s1": A, "s2": None, "s3": B})
    feed(tl, 3.0, {A, B}, {"s1": A, "s2": B, "s3": B})
    tl.event(4.0, "start", C)
    feed(tl, 4.5, {A, B}, {"s1": A, "s2": B, "s3": B})
    feed(tl, 5.2, {A, B, C}, {"s1": A, "s2": B, "s3": B})
    tl.end(6.0)
    r = tl.report()
    kill, start = r.events
    assert kill.detection_s == pytest.approx(2.0) and kill.eviction_s == pytest.approx(0.4)
    assert kill.affected == 2 and kill.lost == 0
    assert sorted(kill.gaps_s) == pytest.approx([0.4, 2.0])  # both from the kill at 1.0
    assert kill.gap_max_s == pytest.approx(2.0) and kill.listed_s is None
    assert start.detection_s is None and start.affected == 0 and start.listed_s == pytest.approx(1.2)
    assert (r.sessions, r.back, r.lost, r.connected_at_end) == (3, 2, 0, 3)
    assert r.gaps["s1"] == ((0.0, 1.4),)  # down from its last sample up
    assert r.gaps["s2"] == ((1.0, 3.0),)  # its client noticed at 1.4, but it was taken down by the kill at 1.0
    assert r.gaps["s3"] == ()
    assert r.counts[0] == (0.0, {C: 2, B: 1})


def test_a_drain_gap_runs_from_the_last_sample_on_the_server_and_a_session_never_back_is_lost():
    tl = Timeline()
    feed(tl, 0.0, {A, B}, {"s1": B, "s2": B})
    tl.event(0.5, "drain", B)
    feed(tl, 1.0, {A, B}, {"s1": B, "s2": B})
    feed(tl, 2.0, {A, B}, {"s1": None, "s2": B})
    feed(tl, 2.3, {A, B}, {"s1": A, "s2": B})
    feed(tl, 3.0, {A, B}, {"s1": A, "s2": None})
    tl.end(10.0)
    (drain,) = tl.report().events
    assert drain.detection_s is None  # a drained member stays listed
    assert drain.gaps_s == pytest.approx((1.3,))  # s1: last on member1 at 1.0, back at 2.3
    assert drain.lost == 1 and drain.eviction_s == pytest.approx(2.5)
    r = tl.report()
    assert (r.back, r.lost) == (1, 1)
    assert r.gaps["s2"] == ((2.3, 10.0),)  # still down at the end


def test_a_session_that_never_left_a_frozen_server_is_neither_back_nor_lost():
    tl = Timeline()
    feed(tl, 0.0, {A, B}, {"s1": B})
    tl.event(0.1, "stop", B)
    tl.event(0.5, "cont", B)
    feed(tl, 1.0, {A, B}, {"s1": B})
    tl.end(2.0)
    stop, _ = tl.report().events
    assert stop.affected == 1 and stop.gaps_s == () and stop.lost == 0
    assert tl.report().back == 0


def test_traffic_lost_counts_the_pings_of_each_window():
    tl = Timeline()
    tl.event(1.0, "kill", B)
    tl.event(3.0, "start", B)
    for t, ok in [(0.5, True), (1.1, False), (1.2, False), (2.0, True), (3.5, True)]:
        tl.probe(t, ok)
    tl.end(4.0)
    kill, start = tl.report().events
    assert (kill.traffic_lost, kill.traffic_sent) == (2, 3)
    assert (start.traffic_lost, start.traffic_sent) == (0, 1)


def test_percentile_is_nearest_rank():
    assert percentile([], 95) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 21)], 95) == 19.0
    assert percentile([5.0], 95) == 5.0


def rows(*items: tuple[str, str, str]) -> list[SessionRow]:
    return [SessionRow(name, "alice", addr, server) for name, addr, server in items]


def test_observed_sessions_keep_their_key_across_a_reconnect_even_before_the_old_row_goes():
    samples = [
        (0.0, rows(("S1", "10.0.0.1", B), ("S2", "10.0.0.1", C))),
        # the client of S2 is back as S3 while the controller still lists S2 (member2 not yet dropped)
        (1.0, rows(("S1", "10.0.0.1", B), ("S2", "10.0.0.1", C), ("S3", "10.0.0.1", B))),
        (2.0, rows(("S1", "10.0.0.1", B), ("S3", "10.0.0.1", B))),
        (3.0, rows(("S1", "10.0.0.1", B), ("S3", "10.0.0.1", B), ("S4", "10.0.0.2", A))),
    ]
    out, moves = resolve_sessions(samples)
    assert moves == [Move("alice@10.0.0.1#2", 1.0, 1.0)]  # S2 last seen at 1.0, S3 first seen at 1.0
    assert out[0][1] == {"alice@10.0.0.1#1": B, "alice@10.0.0.1#2": C}
    assert out[1][1] == {"alice@10.0.0.1#1": B, "alice@10.0.0.1#2": B}  # the newest name wins
    assert out[2][1] == {"alice@10.0.0.1#1": B, "alice@10.0.0.1#2": B}
    assert out[3][1]["alice@10.0.0.2#1"] == A  # a new client, not a reconnect


def test_observed_session_gone_then_back_later_has_a_gap():
    samples = [(0.0, rows(("S1", "a", B))), (1.0, []), (2.0, rows(("S9", "a", A))), (3.0, [])]
    out, moves = resolve_sessions(samples)
    assert [w for _, w in out] == [{"alice@a#1": B}, {"alice@a#1": None}, {"alice@a#1": A}, {"alice@a#1": None}]
    assert moves == [Move("alice@a#1", 0.0, 2.0), Move("alice@a#1", 2.0, None)]


def test_an_observed_member_leaving_reports_its_count_and_the_moves_around_it():
    tl = Timeline()
    tl.counts(0.0, {A: 1, B: 2})
    tl.counts(1.0, {A: 3, B: 2})  # the clients are back on A before the controller drops B
    tl.event(2.0, "left", B)
    tl.counts(2.0, {A: 3})
    tl.moves([Move("k1", 0.5, 0.9), Move("k2", 0.5, 1.0), Move("k3", 7.0, None)])
    tl.end(8.0)
    (left,) = tl.report().events
    assert left.affected == 2 and left.detection_s == 1.5 and left.eviction_s == 0.0
    assert left.gaps_s == pytest.approx((0.4, 0.5)) and left.lost == 1


def test_an_observed_drain_reports_the_moves_from_then_and_a_move_in_its_first_sample_is_not_the_earlier_leaving():
    tl = Timeline()
    tl.counts(0.0, {A: 2, B: 2})
    tl.event(1.0, "left", B)
    tl.counts(1.0, {A: 4})
    tl.event(5.0, "draining", A)  # the same sample shows a session already moved by the drain
    tl.event(6.0, "drained", A)
    tl.event(7.0, "undrained", A)
    tl.moves([Move("k1", 0.8, 1.0), Move("k2", 0.8, 1.2), Move("k3", 4.8, 5.0), Move("k4", 5.6, 6.4)])
    tl.end(8.0)
    report = tl.report()
    left, draining, drained, undrained = report.events
    assert left.gaps_s == pytest.approx((0.2, 0.4)) and left.detection_s == pytest.approx(0.2)
    assert draining.affected == 4 and draining.gaps_s == pytest.approx((0.2, 0.8)) and draining.detection_s is None
    assert drained.gaps_s == () and undrained.gaps_s == ()
    assert report.back == 4 and report.lost == 0


def test_sessions_that_leave_only_at_a_later_fault_are_that_faults_and_recovery_does_not_end_a_fault_window():
    tl = Timeline()
    feed(tl, 0.0, {A, B}, {"s1": B})
    tl.event(1.0, "partition", B)  # the clients keep their sessions on a partitioned member
    tl.event(2.0, "heal", B)
    feed(tl, 3.0, {A, B}, {"s1": B})
    tl.event(4.0, "link_down", B)
    tl.event(5.0, "link_up", B)  # the link is back before the client's keepalive gave up...
    feed(tl, 6.0, {A, B}, {"s1": None})  # ...but it gave up anyway
    feed(tl, 6.5, {A, B}, {"s1": A})
    tl.end(7.0)
    partition, _, link_down, _ = tl.report().events
    assert partition.affected == 1 and partition.gaps_s == () and partition.lost == 0
    assert link_down.gaps_s == pytest.approx((2.5,)) and link_down.eviction_s == pytest.approx(2.0)
