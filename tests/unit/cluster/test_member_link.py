"""The member link core (node/cluster/member_link.py), driven by moving `now`."""

from __future__ import annotations

import random

import pytest

from controller.errors import IllegalTransition
from node.cluster.member_link import (
    KEY_CHANGED_TEXT, TRANSITIONS, Connect, Disconnect, LinkEvent, LinkState, Log, MemberLink,
)
from node.softether.errors import Err

KEY_A = "A" * 40
KEY_B = "B" * 40


def make(**kwargs) -> MemberLink:
    kwargs.setdefault("rng", random.Random(7))
    return MemberLink(**kwargs)


def connects(link: MemberLink) -> list[int]:
    return [a.attempt for a in link.take_actions() if isinstance(a, Connect)]


def run_until(link: MemberLink, until: float, on_connect) -> list[float]:
    """Step from deadline to deadline up to `until`; call on_connect(attempt, now)
    for each attempt started. Returns the start times of the attempts."""
    starts = []
    for _ in range(10_000):
        deadline = link.next_deadline()
        if deadline is None or deadline > until:
            break
        link.handle_timer(deadline)
        for attempt in connects(link):
            starts.append(deadline)
            on_connect(attempt, deadline)
    return starts


def test_first_attempt_starts_at_once_and_counts_a_try():
    link = make()
    link.start(100.0)
    assert link.state is LinkState.DISCOVERING
    actions = link.take_actions()
    assert Connect(1) in actions
    assert any(isinstance(a, Log) for a in actions)
    status = link.status()
    assert (status.num_try, status.num_connected, status.num_failed) == (1, 0, 0)
    assert status.started_time == 100.0
    assert status.last_error == Err.TRYING_TO_CONNECT
    assert not status.online


def test_join_success_sets_counters_and_times():
    link = make()
    link.start(10.0)
    link.take_actions()
    assert link.discovered(1, 10.1, KEY_A, None)
    assert link.state is LinkState.JOINING
    assert link.joined(1, 10.2, member_id=7)
    status = link.status()
    assert status.online and status.state is LinkState.ONLINE
    assert status.last_error == 0
    assert (status.num_try, status.num_connected, status.num_failed) == (1, 1, 0)
    assert status.first_connected_time == status.current_connected_time == 10.2
    assert status.member_id == 7
    assert link.next_deadline() is None  # nothing to do while online


def test_failed_attempts_never_start_faster_than_the_interval():
    link = make(retry_interval_s=3.0, jitter_s=0.5)
    link.start(0.0)
    link.take_actions()
    link.failed(1, 0.01, Err.ACCESS_DENIED, "wrong password")

    def refuse(attempt, now):
        assert link.discovered(attempt, now + 0.005, KEY_A, None)
        link.failed(attempt, now + 0.01, Err.ACCESS_DENIED, "wrong password")

    starts = [0.0] + run_until(link, 60.0, refuse)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert gaps and all(3.0 <= g <= 3.5 for g in gaps)
    assert len(starts) <= 60 / 3.0 + 1
    status = link.status()
    assert status.num_try == len(starts)
    assert status.num_failed == len(starts)
    assert status.num_connected == 0
    assert status.last_error == Err.ACCESS_DENIED


def test_jitter_spreads_retries():
    link = make(retry_interval_s=3.0, jitter_s=0.5, rng=random.Random(1))
    link.start(0.0)
    link.take_actions()
    link.failed(1, 0.0, Err.CONNECT_TO_FARM_CONTROLLER, "refused")
    starts = [0.0] + run_until(link, 40.0, lambda a, now: link.failed(
        a, now, Err.CONNECT_TO_FARM_CONTROLLER, "refused"))
    gaps = {round(b - a, 6) for a, b in zip(starts, starts[1:])}
    assert len(gaps) > 1


def online_link(**kwargs) -> MemberLink:
    """A link that started at 0.0 and joined at 0.2 (actions taken)."""
    link = make(**kwargs)
    link.start(0.0)
    link.discovered(1, 0.1, KEY_A, None)
    link.joined(1, 0.2, 1)
    link.take_actions()
    return link


def test_retry_is_immediate_after_a_long_online_period():
    link = online_link(retry_interval_s=3.0, jitter_s=0.0)
    assert link.lost(100.0, Err.DISCONNECTED, "controller silent for 3 s")
    actions = link.take_actions()
    assert Disconnect(1) in actions
    assert link.next_deadline() == 100.0
    link.handle_timer(100.0)
    assert connects(link) == [2]
    status = link.status()
    assert status.last_error == Err.DISCONNECTED
    assert status.current_connected_time == 0.0
    assert status.first_connected_time == 0.2


def test_lost_right_after_joining_still_waits_the_interval():
    link = online_link(retry_interval_s=3.0, jitter_s=0.0)
    link.lost(0.3, Err.DISCONNECTED, "rejoin asked")
    assert link.next_deadline() == 3.0


def test_rejoin_counts_a_second_connection():
    link = make(jitter_s=0.0)
    link.start(0.0)
    link.discovered(1, 0.0, KEY_A, None)
    link.joined(1, 0.0, 3)
    link.lost(50.0, Err.DISCONNECTED, "silent")
    link.handle_timer(50.0)
    assert link.discovered(2, 50.1, KEY_A, KEY_A)
    assert link.joined(2, 50.2, 3)
    status = link.status()
    assert (status.num_try, status.num_connected, status.num_failed) == (2, 2, 0)
    assert status.first_connected_time == 0.0
    assert status.current_connected_time == 50.2


def test_changed_key_is_refused_before_any_connection():
    link = make()
    link.start(0.0)
    link.take_actions()
    assert not link.discovered(1, 0.1, offered_key=KEY_B, pinned_key=KEY_A)
    assert link.state is LinkState.RETRY_WAIT
    actions = link.take_actions()
    assert Disconnect(1) in actions
    logs = [a for a in actions if isinstance(a, Log)]
    assert logs and KEY_CHANGED_TEXT.format(pinned=KEY_A, offered=KEY_B) in logs[0].text
    assert logs[0].warning
    assert link.status().last_error == Err.CERT_NOT_TRUSTED
    assert link.status().num_failed == 1


def test_same_failure_logs_once_then_a_new_cause_logs_again():
    link = make()
    link.start(0.0)
    link.take_actions()
    link.failed(1, 0.0, Err.ACCESS_DENIED, "wrong password")
    first = [a for a in link.take_actions() if isinstance(a, Log)]
    assert len(first) == 1
    lines = []

    def refuse(attempt, now):
        link.failed(attempt, now, Err.ACCESS_DENIED, "wrong password")
        lines.extend(a for a in link.take_actions() if isinstance(a, Log))

    run_until(link, 30.0, refuse)
    assert lines == []
    link.handle_timer(link.next_deadline())
    attempt = connects(link)[0]
    link.failed(attempt, 40.0, Err.CONNECT_TO_FARM_CONTROLLER, "refused")
    assert len([a for a in link.take_actions() if isinstance(a, Log)]) == 1


def test_stale_results_are_ignored():
    link = make(jitter_s=0.0)
    link.start(0.0)
    link.failed(1, 0.0, Err.CONNECT_TO_FARM_CONTROLLER, "refused")
    link.handle_timer(3.0)
    assert link.attempt == 2
    assert not link.discovered(1, 3.1, KEY_A, None)
    assert not link.joined(1, 3.1, 1)
    assert not link.failed(1, 3.1, Err.ACCESS_DENIED, "late")
    assert link.state is LinkState.DISCOVERING
    assert link.status().num_failed == 1


def test_attempt_past_its_deadline_fails_and_is_abandoned():
    link = make(attempt_timeout_s=15.0)
    link.start(0.0)
    link.take_actions()
    link.discovered(1, 1.0, KEY_A, None)
    assert link.next_deadline() == 15.0
    link.handle_timer(14.9)
    assert link.state is LinkState.JOINING
    link.handle_timer(15.0)
    assert link.state is LinkState.RETRY_WAIT
    assert Disconnect(1) in link.take_actions()
    assert link.status().last_error == Err.CONNECT_TO_FARM_CONTROLLER


def test_stop_abandons_the_attempt_and_is_final():
    link = make()
    link.start(0.0)
    link.take_actions()
    link.discovered(1, 0.0, KEY_A, None)
    link.joined(1, 0.0, 2)
    link.stop(1.0)
    assert Disconnect(1) in link.take_actions()
    assert link.state is LinkState.STOPPED
    assert link.next_deadline() is None
    link.stop(2.0)  # idempotent
    assert not link.lost(3.0, Err.DISCONNECTED, "late event")
    link.handle_timer(100.0)
    assert link.take_actions() == []
    with pytest.raises(IllegalTransition):
        link.start(4.0)


def test_lost_while_not_online_is_ignored():
    link = make()
    link.start(0.0)
    assert not link.lost(0.1, Err.DISCONNECTED, "x")
    assert link.state is LinkState.DISCOVERING


def test_transition_table_has_no_way_out_of_stopped_but_stop():
    assert {e for (s, e) in TRANSITIONS if s is LinkState.STOPPED} == {LinkEvent.STOP}
    assert all(target is not LinkState.IDLE for target in TRANSITIONS.values())


def test_counters_invariant_over_a_mixed_history():
    link = make(jitter_s=0.2, rng=random.Random(3))
    link.start(0.0)
    outcomes = iter(["fail", "join", "lose", "fail", "fail", "join", "lose", "join"])

    def step(attempt, now):
        outcome = next(outcomes, "fail")
        if outcome == "fail":
            link.failed(attempt, now, Err.CONNECT_TO_FARM_CONTROLLER, "down")
        else:
            link.discovered(attempt, now, KEY_A, KEY_A)
            link.joined(attempt, now, 1)
            link.lost(now + 5.0, Err.DISCONNECTED, "silent")

    step(1, 0.0)
    run_until(link, 120.0, step)
    s = link.status()
    in_progress = 1 if link.state in (LinkState.DISCOVERING, LinkState.JOINING) else 0
    assert s.num_try == s.num_connected + s.num_failed + in_progress
    assert s.num_connected >= 3


def test_bad_numbers_are_refused():
    with pytest.raises(ValueError):
        MemberLink(retry_interval_s=0)
    with pytest.raises(ValueError):
        MemberLink(jitter_s=-1)
