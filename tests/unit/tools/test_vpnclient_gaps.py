import pytest

from tools.vpnclient.gaps import GapTracker


def run(tracker, answered, n, interval=0.1):
    for seq in range(n):
        tracker.sent(seq, seq * interval)
    for seq in answered:
        tracker.answered(seq)
    return tracker.report()


def test_no_loss_no_gap():
    r = run(GapTracker(0.1), range(10), 10)
    assert (r.sent, r.answered, r.lost, r.gaps, r.longest_gap_s) == (10, 10, 0, (), 0.0)


def test_one_late_or_lost_probe_is_within_the_slack():
    r = run(GapTracker(0.1, slack=2.5), [0, 1, 3, 4], 5)
    assert r.lost == 1 and r.gaps == ()


def test_an_outage_is_measured_from_the_last_to_the_next_answered_send():
    r = run(GapTracker(0.1), [0, 1, 2, 8, 9, 12], 13)
    assert [x for gap in r.gaps for x in gap] == pytest.approx([0.2, 0.8, 0.9, 1.2])
    assert r.longest_gap_s == pytest.approx(0.6) and r.lost == 7


def test_duplicate_and_unknown_answers_are_ignored():
    t = GapTracker(0.1)
    t.sent(0, 0.0)
    assert t.answered(0) and not t.answered(0) and not t.answered(7)
    assert t.report().answered == 1


def test_nothing_answered_reports_no_gap_but_all_lost():
    r = run(GapTracker(0.1), [], 4)
    assert (r.lost, r.gaps, r.longest_gap_s) == (4, (), 0.0)
