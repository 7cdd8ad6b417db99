"""Member selection (SiGetNextFarmMember rules) and the fresh-load book."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.errors import NoEligibleServer
from controller.selection import (
    SKIP_CONTROLLER_ONLY,
    SKIP_FULL,
    Candidate,
    FreshLoad,
    HighestPoints,
    SelectionDecision,
    SelectionPolicy,
    assess,
)
from controller.registry import JoinInfo, MemberStatus, Registry


def cand(server_id, sessions=0, **kw):
    return Candidate(server_id=server_id, sessions=sessions, **kw)


def choose(cands, controller_only=False):
    return HighestPoints().choose(cands, controller_only=controller_only)


class FirstEligible:
    """A different policy, to prove the interface is pluggable."""

    name = "first-eligible"

    def choose(self, candidates, *, controller_only):
        views = assess(candidates, controller_only=controller_only)
        for v in views:
            if v.skipped is None:
                return SelectionDecision(chosen=v.server_id, candidates=tuple(views), reason="first", policy=self.name)
        raise NoEligibleServer("none")


def test_other_policy_plugs_into_registry():
    reg = Registry(b"K" * 32, JoinInfo(hostname="c", public_ip="", public_ports=(1,)), 0.0)
    for key in (b"a" * 32, b"b" * 32):
        mid = reg.link_opened(key, 0.0)
        reg.joined(mid, JoinInfo(hostname="m", public_ip="", public_ports=(1,)), 0.0)
        reg.status_reported(mid, MemberStatus(points=100_000, sessions=0), 0.0)
        reg.endpoint_checked(mid, True, "")
    policy: SelectionPolicy = FirstEligible()
    assert reg.select(0.1, controller_only=True, policy=policy).chosen == 2
    assert reg.select(0.1, controller_only=True).chosen == 3


def softether_reference(cands, controller_only):
    """SiGetNextFarmMember's loop, transcribed from its description."""
    best, best_point = None, 0
    for c in cands:
        if c.is_controller and controller_only:
            continue
        if c.unavailable is not None:
            continue
        if c.load < (c.max_sessions or c.points_max_sessions) and c.points >= best_point:
            best, best_point = c.server_id, c.points
    return best


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5000), st.integers(0, 300), st.integers(0, 4000), st.booleans()),
        min_size=1, max_size=6,
    ),
    st.booleans(),
)
def test_matches_softether_loop(rows, controller_only):
    cands = [
        Candidate(server_id=i + 1, sessions=n, weight=w, max_sessions=mx, points_max_sessions=4096,
                  is_controller=(i == 0), unavailable="evicted" if off and i else None)
        for i, (n, w, mx, off) in enumerate(rows)
    ]
    want = softether_reference(cands, controller_only)
    if want is None:
        with pytest.raises(NoEligibleServer):
            choose(cands, controller_only)
    else:
        assert choose(cands, controller_only).chosen == want


def test_highest_points_wins():
    d = choose([cand(1, 5, is_controller=True), cand(2, 1), cand(3, 3)])
    assert d.chosen == 2
    assert [v.points for v in d.candidates] == [99_995, 99_999, 99_997]
    assert "highest points 99999 of 3 eligible" == d.reason


def test_tie_goes_to_later_entry():
    d = choose([cand(1, is_controller=True), cand(2), cand(3)])
    assert d.chosen == 3
    assert "tie" in d.reason


def test_weight_shifts_choice():
    # 100 sessions at weight 200 cost 50 points; 60 at weight 100 cost 60
    d = choose([cand(2, 60), cand(3, 100, weight=200)])
    assert d.chosen == 3


def test_controller_only_skips_controller():
    d = choose([cand(1, is_controller=True), cand(2, 50)], controller_only=True)
    assert d.chosen == 2
    assert d.candidates[0].skipped == SKIP_CONTROLLER_ONLY


def test_unavailable_and_full_skipped():
    cs = [
        cand(1, 0, is_controller=True, unavailable=None, max_sessions=10),
        cand(2, 0, unavailable="evicted"),
        cand(3, 0, unavailable="suspect"),
        cand(4, 10, max_sessions=10),
        cand(5, 9, max_sessions=10),
    ]
    d = choose(cs)
    assert d.chosen == 1
    assert [v.skipped for v in d.candidates] == [None, "evicted", "suspect", SKIP_FULL, None]


def test_pending_counts_toward_full_and_points():
    d = choose([cand(2, 5, pending=5, max_sessions=10), cand(3, 3, pending=4)])
    assert d.chosen == 3
    assert d.candidates[0].skipped == SKIP_FULL
    assert d.candidates[1].points == 99_993


def test_max_sessions_zero_means_points_cap():
    d = choose([cand(2, 4095, max_sessions=0, points_max_sessions=4096)])
    assert d.chosen == 2
    with pytest.raises(NoEligibleServer):
        choose([cand(2, 4096, max_sessions=0, points_max_sessions=4096)])


def test_zero_points_still_selectable():
    d = choose([cand(2, 100_000 - 1, weight=50)])
    assert d.candidates[0].points == 0
    assert d.chosen == 2


def test_no_eligible_carries_decision():
    with pytest.raises(NoEligibleServer) as info:
        choose([cand(1, is_controller=True), cand(2, unavailable="evicted")], controller_only=True)
    decision = info.value.decision
    assert decision.chosen is None
    assert [v.skipped for v in decision.candidates] == [SKIP_CONTROLLER_ONLY, "evicted"]
    assert "2: evicted" in str(info.value)


def test_empty_cluster():
    with pytest.raises(NoEligibleServer, match="no server"):
        choose([])


def test_fresh_load_expires_after_lifetime():
    book = FreshLoad(lifetime_s=60.0)
    book.note_redirect(2, now=10.0)
    book.note_redirect(2, now=20.0)
    assert book.next_deadline() == 70.0
    assert book.pending(2, now=69.999) == 2
    assert book.pending(2, now=70.0) == 1
    assert book.next_deadline() == 80.0
    assert book.pending(2, now=80.0) == 0
    assert book.next_deadline() is None


def test_fresh_load_cleared_by_status_report():
    book = FreshLoad()
    book.note_redirect(2, now=1.0)
    book.note_redirect(3, now=1.0)
    book.note_redirect(2, now=2.0)
    book.status_reported(2, now=1.5)
    assert book.pending(2, now=2.0) == 1
    assert book.pending(3, now=2.0) == 1
    book.status_reported(2, now=2.0)
    assert book.pending(2, now=2.0) == 0
    book.forget(3)
    assert book.pending(3, now=2.0) == 0


def test_burst_spread_by_weight_with_fresh_load():
    book = FreshLoad()
    weights = {2: 100, 3: 100, 4: 200}
    got = {k: 0 for k in weights}
    for _ in range(300):
        cs = [cand(k, 0, pending=book.pending(k, 5.0), weight=w) for k, w in weights.items()]
        chosen = choose(cs).chosen
        book.note_redirect(chosen, 5.0)
        got[chosen] += 1
    assert got == {2: 75, 3: 75, 4: 150}
