"""vpnbus/requests.py: the sans-IO cores, driven by moving `now` by hand."""

import pytest

from vpnbus.requests import (PROBE_DELAYS_S, DropCounter, HeartbeatDue, Liveness, PeerGone, PeerSeen,
                             PeerSilent, RequestTracker)

A, B = "A" * 40, "B" * 40


# -- RequestTracker ----------------------------------------------------------

def test_ids_are_fresh_and_increasing():
    t = RequestTracker()
    ids = [t.start(A, 0.0).id, t.next_id(), t.start(B, 0.0).id]
    assert ids == sorted(set(ids)) and ids[0] >= 1


def test_reply_before_deadline_resolves_once():
    t = RequestTracker(default_timeout_s=2.0)
    p = t.start(A, now=10.0, waiter="w")
    assert t.next_deadline() == 12.0
    got = t.resolve(p.id, A)
    assert got is p and got.waiter == "w"
    assert t.resolve(p.id, A) is None          # a duplicate reply
    assert t.unknown_replies == 1 and t.next_deadline() is None
    assert t.handle_timer(100.0) == [] and t.timeouts == 0


def test_timeout_fires_only_at_deadline():
    t = RequestTracker(default_timeout_s=2.0)
    p = t.start(A, now=10.0)
    q = t.start(A, now=10.5, timeout_s=0.25)
    assert t.next_deadline() == 10.75
    assert t.handle_timer(10.749999) == []
    assert t.handle_timer(10.75) == [q]
    assert t.next_deadline() == 12.0
    assert t.handle_timer(11.999999) == []
    assert t.handle_timer(12.0) == [p]
    assert t.timeouts == 2 and t.pending() == [] and t.next_deadline() is None


def test_late_reply_is_ignored_and_counted_as_late():
    t = RequestTracker(default_timeout_s=1.0)
    p = t.start(A, now=0.0)
    assert t.handle_timer(1.0) == [p]
    assert t.resolve(p.id, A) is None
    assert (t.late_replies, t.unknown_replies) == (1, 0)


def test_unknown_ids_and_wrong_peer_are_counted():
    t = RequestTracker()
    p = t.start(A, now=0.0)
    assert t.resolve(999, A) is None
    assert t.resolve(p.id, B) is None           # B cannot answer A's request
    assert t.unknown_replies == 2
    assert t.resolve(p.id, A) is p              # A still can


def test_late_memory_is_bounded():
    t = RequestTracker(default_timeout_s=1.0, late_memory=2)
    ps = [t.start(A, now=0.0) for _ in range(3)]
    assert len(t.handle_timer(5.0)) == 3
    assert t.resolve(ps[0].id, A) is None       # forgotten: unknown, not late
    assert t.resolve(ps[2].id, A) is None
    assert (t.late_replies, t.unknown_replies) == (1, 1)


def test_cancel_forgets_without_timeout():
    t = RequestTracker(default_timeout_s=1.0)
    p = t.start(A, now=0.0)
    assert t.cancel(p.id) is p and t.cancel(p.id) is None
    assert t.handle_timer(5.0) == [] and t.timeouts == 0 and t.next_deadline() is None


def test_bad_timeouts_refused():
    with pytest.raises(ValueError):
        RequestTracker(default_timeout_s=0)
    with pytest.raises(ValueError):
        RequestTracker().start(A, 0.0, timeout_s=-1)


# -- Liveness ----------------------------------------------------------------

def test_new_peer_is_seen_and_heartbeated_at_once():
    lv = Liveness(heartbeat_interval_s=1.0, silence_timeout_s=3.0)
    assert lv.heard_from(A, 0.0) == [PeerSeen(A)]
    assert lv.heard_from(A, 0.1) == []
    assert lv.next_deadline() == 0.0
    assert lv.handle_timer(0.1) == [HeartbeatDue(A)]
    assert lv.handle_timer(0.2) == []           # once per interval, sent or not
    assert lv.next_deadline() == pytest.approx(1.1)


def test_sending_postpones_heartbeat():
    lv = Liveness(1.0, 3.0)
    lv.heard_from(A, 0.0)
    lv.sent_to(A, 0.0)
    lv.sent_to(A, 0.75)
    lv.heard_from(A, 1.5)
    assert lv.handle_timer(1.5) == []
    assert lv.handle_timer(1.75) == [HeartbeatDue(A)]


def test_silence_reported_once_then_forgotten_then_seen_again():
    lv = Liveness(1.0, 3.0)
    lv.heard_from(A, 0.0)
    lv.heard_from(B, 2.0)
    lv.sent_to(A, 2.5)
    lv.sent_to(B, 2.5)
    assert lv.handle_timer(2.999) == []
    assert lv.handle_timer(3.0) == [PeerSilent(A, 3.0)]
    assert lv.peers == {B} and lv.silent_for(A, 4.0) is None
    assert lv.handle_timer(3.4) == []
    assert lv.heard_from(A, 10.0) == [PeerSeen(A)]


def test_watched_peer_keeps_heartbeats_and_reports_each_episode():
    lv = Liveness(1.0, 3.0)
    lv.watch(A, now=0.0)
    assert lv.peers == frozenset()              # not seen yet
    assert lv.handle_timer(0.0) == [HeartbeatDue(A)]
    assert lv.heard_from(A, 0.5) == [PeerSeen(A)]
    lv.sent_to(A, 3.0)
    assert lv.handle_timer(3.5) == [PeerSilent(A, 3.0)]
    assert lv.handle_timer(4.0) == [HeartbeatDue(A)]   # still heartbeated
    assert lv.handle_timer(100.0) == [HeartbeatDue(A)]  # no second PeerSilent
    assert lv.heard_from(A, 101.0) == [PeerSeen(A)]
    assert lv.peers == {A}


def test_next_deadline_ignores_peers_already_silent():
    lv = Liveness(1.0, 3.0)
    lv.watch(A, 0.0)
    lv.handle_timer(0.0)
    assert lv.next_deadline() == 1.0
    lv.forget(A)
    assert lv.next_deadline() is None and lv.handle_timer(50.0) == []


def test_a_closed_connection_probes_every_live_peer_now_and_after_the_delays():
    lv = Liveness(1.0, 3.0)
    lv.heard_from(A, 0.0)
    lv.heard_from(B, 0.0)
    lv.handle_timer(0.0)                          # both just heartbeated
    lv.connection_closed(0.2)
    assert lv.next_deadline() == 0.2
    assert lv.handle_timer(0.2) == [HeartbeatDue(A), HeartbeatDue(B)]
    assert lv.next_deadline() == pytest.approx(0.2 + PROBE_DELAYS_S[0])
    assert lv.handle_timer(0.2 + PROBE_DELAYS_S[0]) == [HeartbeatDue(A), HeartbeatDue(B)]
    assert lv.handle_timer(0.2 + PROBE_DELAYS_S[-1]) == [HeartbeatDue(A), HeartbeatDue(B)]
    assert lv.handle_timer(0.2 + PROBE_DELAYS_S[-1] + 0.1) == []   # back to the interval


def test_a_burst_of_closed_connections_costs_each_peer_one_probe_per_step():
    lv = Liveness(1.0, 3.0)
    lv.heard_from(A, 0.0)
    lv.handle_timer(0.0)
    for i in range(1000):
        lv.connection_closed(0.5 + i * 1e-6)
    beats = [len(lv.handle_timer(t)) for t in (0.501, 0.501 + PROBE_DELAYS_S[0], 0.501 + PROBE_DELAYS_S[-1])]
    assert beats == [1, 1, 1] and lv.next_deadline() == pytest.approx(0.501 + PROBE_DELAYS_S[-1] + 1.0)


def test_a_peer_without_a_route_is_gone_at_once_and_forgotten():
    lv = Liveness(1.0, 3.0)
    lv.heard_from(A, 0.0)
    lv.heard_from(B, 0.0)
    assert lv.unreachable(A, 0.7) == [PeerGone(A, 0.7)]
    assert lv.peers == {B}
    assert lv.unreachable(A, 0.8) == []           # once
    assert lv.handle_timer(3.5) == [PeerSilent(B, 3.5)]   # no PeerSilent for A as well
    assert lv.unreachable("C" * 40, 4.0) == []    # never heard: nothing to report
    assert lv.heard_from(A, 5.0) == [PeerSeen(A)]  # it reconnects: a new peer


def test_a_watched_peer_without_a_route_is_down_until_heard_again():
    lv = Liveness(1.0, 3.0)
    lv.watch(A, 0.0)
    lv.heard_from(A, 0.5)
    assert lv.unreachable(A, 1.0) == [PeerGone(A, 0.5)]
    assert lv.peers == frozenset() and lv.handle_timer(10.0) == [HeartbeatDue(A)]
    assert lv.heard_from(A, 11.0) == [PeerSeen(A)]


def test_liveness_numbers_checked():
    with pytest.raises(ValueError):
        Liveness(heartbeat_interval_s=3.0, silence_timeout_s=3.0)


# -- DropCounter -------------------------------------------------------------

def test_drops_counted_per_peer_and_reason_logged_once():
    d = DropCounter(max_pairs=3)
    assert d.add(A, "not_msgpack") is True
    assert d.add(A, "not_msgpack") is False
    assert d.add(B, "not_msgpack") is True
    assert d.add(A, "bad_field") is True
    assert d.add("C" * 40, "bad_field") is True     # overflow bucket, new
    assert d.add("D" * 40, "bad_field") is False    # same overflow bucket
    assert d.counts[(A, "not_msgpack")] == 2 and d.counts[("*", "bad_field")] == 2
    assert d.total("not_msgpack") == 3 and d.total() == 6


def test_drop_log_lines_are_bounded_across_fresh_keys():
    d = DropCounter(max_logged=2)
    assert [d.add(str(i) * 40, "not_msgpack") for i in range(4)] == [True, True, False, False]
    assert d.total() == 4
