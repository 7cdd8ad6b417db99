"""Member registry and member life: liveness, rejoin, ids, order, events."""

import pytest

from controller.errors import IllegalTransition, InvalidReport, MemberUnknown, NoEligibleServer
from controller.member_life import TRANSITIONS, MemberEvent, MemberState, transition
from controller.registry import (
    ME_ID,
    HubInstance,
    JoinInfo,
    MemberEvicted,
    MemberJoined,
    MemberJoinFailed,
    MemberLeft,
    MemberRecovered,
    MemberRejoined,
    MemberStatus,
    MemberSuspected,
    Registry,
)


def info(name, weight=100, **kw):
    return JoinInfo(hostname=name, public_ip="127.0.0.2", public_ports=(443,), weight=weight, **kw)


def make(now=0.0, **kw):
    return Registry(b"K" * 32, info("ctl"), now, **kw)


def join(reg, key, name, now, weight=100):
    mid = reg.link_opened(key, now)
    reg.joined(mid, info(name, weight), now)
    reg.status_reported(mid, MemberStatus(points=100_000, sessions=0), now)
    reg.endpoint_checked(mid, True, "")
    return mid


def test_me_first_with_id_1():
    reg = make()
    assert reg.me.member_id == ME_ID == 1
    assert reg.me.is_me and reg.me.state is MemberState.ONLINE
    a = join(reg, b"a" * 32, "a", 0.0)
    b = join(reg, b"b" * 32, "b", 0.0)
    assert [m.member_id for m in reg.members()] == [1, a, b]
    assert reg.events() == [MemberJoined(a, "a"), MemberJoined(b, "b")]
    assert reg.events() == []


def test_silent_member_suspected_then_evicted_within_3s():
    reg = make()
    a = join(reg, b"a" * 32, "a", 0.0)
    reg.heard(a, 1.0)
    assert reg.next_deadline() == 3.0
    reg.handle_timer(2.999)
    assert reg.get(a).state is MemberState.ONLINE
    reg.handle_timer(3.0)
    assert reg.get(a).state is MemberState.SUSPECT
    assert reg.events()[-1] == MemberSuspected(a, 2.0)
    assert reg.next_deadline() == 4.0
    reg.handle_timer(4.0)
    assert reg.get(a).state is MemberState.EVICTED
    assert reg.events() == [MemberEvicted(a, 3.0, ())]


def test_a_member_whose_connection_closed_is_evicted_at_once_with_its_hubs():
    reg = make()
    a = join(reg, b"a" * 32, "a", 0.0)
    b = join(reg, b"b" * 32, "b", 0.0)
    reg.status_reported(a, MemberStatus(points=100_000, sessions=0, hubs=(HubInstance(name="H", dynamic=True),)), 0.5)
    reg.events()
    reg.disconnected(a, 0.6)
    assert reg.get(a).state is MemberState.EVICTED and reg.get(b).state is MemberState.ONLINE
    assert reg.events() == [MemberEvicted(a, pytest.approx(0.1), ("H",), disconnected=True)]
    assert [m.member_id for m in reg.listed(0.6)] == [ME_ID, b] and reg.hosting_members("h") == []
    reg.disconnected(a, 0.7)  # an evicted member's close is news to nobody
    assert reg.events() == []
    joining = reg.link_opened(b"c" * 32, 1.0)
    reg.disconnected(joining, 1.1)  # a join that never finished is dropped
    assert reg.events() == [MemberLeft(joining)]


def test_every_state_that_times_out_also_ends_on_a_closed_connection():
    for (state, event), after in TRANSITIONS.items():
        if event is MemberEvent.TIMED_OUT:
            assert transition(state, MemberEvent.DISCONNECTED) is after, state


def test_silent_member_out_of_selection_before_timer_runs():
    reg = make()
    a = join(reg, b"a" * 32, "a", 0.0)
    assert reg.select(1.0, controller_only=True).chosen == a
    with pytest.raises(NoEligibleServer):
        reg.select(3.0, controller_only=True)
    assert reg.candidates(2.0)[1].unavailable == "silent (suspect)"


def test_member_list_drops_a_silent_member_before_the_timer_and_hides_a_draining_one():
    reg = make()
    a = join(reg, b"a" * 32, "a", 0.0)
    b = join(reg, b"b" * 32, "b", 0.0)
    reg.drain(b)
    assert [m.member_id for m in reg.listed(2.9)] == [ME_ID, a]
    reg.handle_timer(2.9)
    assert reg.get(a).state is MemberState.SUSPECT
    assert [m.member_id for m in reg.listed(2.9)] == [ME_ID, a]
    assert [m.member_id for m in reg.listed(3.0)] == [ME_ID]


def test_suspect_recovers_when_heard():
    reg = make()
    a = join(reg, b"a" * 32, "a", 0.0)
    reg.handle_timer(2.5)
    reg.heard(a, 2.6)
    assert reg.get(a).state is MemberState.ONLINE
    assert reg.events()[-1] == MemberRecovered(a)


def test_jump_past_both_deadlines_evicts_directly():
    reg = make()
    a = join(reg, b"a" * 32, "a", 0.0)
    reg.status_reported(a, MemberStatus(points=100_000, sessions=0, hubs=(HubInstance(name="H", dynamic=True),)), 0.5)
    reg.events()
    reg.handle_timer(10.0)
    assert reg.events() == [MemberEvicted(a, 9.5, ("H",))]
    assert reg.hosting_members("h") == []


def test_rejoin_keeps_id_and_moves_to_end():
    reg = make()
    a = join(reg, b"a" * 32, "a", 0.0)
    b = join(reg, b"b" * 32, "b", 0.0)
    reg.heard(b, 3.0)
    reg.handle_timer(3.5)
    assert reg.get(a).state is MemberState.EVICTED
    reg.events()
    again = reg.link_opened(b"a" * 32, 5.0)
    assert again == a and reg.get(a).state is MemberState.REJOINING
    reg.joined(a, info("a", 200), 5.0)
    assert reg.events() == [MemberRejoined(a, "a")]
    assert [m.member_id for m in reg.members()] == [1, b, a]
    assert reg.get(a).weight == 200


def test_joined_member_waits_for_first_status():
    reg = make()
    a = reg.link_opened(b"a" * 32, 0.0)
    reg.joined(a, info("a"), 0.0)
    assert reg.candidates(0.1)[1].unavailable == "awaiting first status"
    reg.status_reported(a, MemberStatus(points=99_000, sessions=1000), 0.2)
    assert reg.candidates(0.3)[1].unavailable == "endpoint not verified"
    reg.endpoint_checked(a, True, "")
    assert reg.candidates(0.3)[1].unavailable is None
    assert reg.candidates(0.3)[1].sessions == 1000


def test_join_timeout_forgets_new_member():
    reg = make()
    a = reg.link_opened(b"a" * 32, 0.0)
    reg.handle_timer(3.0)
    assert reg.events() == [MemberLeft(a)]
    with pytest.raises(MemberUnknown):
        reg.get(a)
    # same key comes back with the same id
    assert reg.link_opened(b"a" * 32, 4.0) == a


def test_join_failed_and_invalid_join():
    reg = make()
    a = reg.link_opened(b"a" * 32, 0.0)
    reg.join_failed(a, 0.1)
    assert reg.events() == [MemberJoinFailed(a), MemberLeft(a)]
    b = reg.link_opened(b"b" * 32, 0.0)
    with pytest.raises(InvalidReport):
        reg.joined(b, JoinInfo(hostname="b", public_ip="", public_ports=()), 0.0)
    with pytest.raises(MemberUnknown):
        reg.get(b)


@pytest.mark.parametrize(
    "bad",
    [
        JoinInfo(hostname="", public_ip="", public_ports=(443,)),
        JoinInfo(hostname="x", public_ip="", public_ports=tuple(range(1, 130))),
        JoinInfo(hostname="x", public_ip="", public_ports=(0,)),
        JoinInfo(hostname="x", public_ip="", public_ports=(70000,)),
        JoinInfo(hostname="x", public_ip="", public_ports=(443,), weight=-1),
    ],
)
def test_join_info_checked(bad):
    reg = make()
    mid = reg.link_opened(b"a" * 32, 0.0)
    with pytest.raises(InvalidReport):
        reg.joined(mid, bad, 0.0)


def test_member_cannot_use_controller_key():
    reg = make()
    with pytest.raises(InvalidReport):
        reg.link_opened(b"K" * 32, 0.0)


@pytest.mark.parametrize(
    "status",
    [
        MemberStatus(points=100_001, sessions=0),
        MemberStatus(points=5, sessions=-1),
        MemberStatus(points=5, sessions=0, hubs=(HubInstance(name="h", dynamic=True, sessions=-2),)),
    ],
)
def test_bad_status_rejected_and_ignored(status):
    reg = make()
    a = join(reg, b"a" * 32, "a", 0.0)
    with pytest.raises(InvalidReport):
        reg.status_reported(a, status, 1.0)
    assert reg.get(a).last_status_at == 0.0


def test_status_from_evicted_member_rejected():
    reg = make()
    a = join(reg, b"a" * 32, "a", 0.0)
    reg.handle_timer(3.0)
    with pytest.raises(InvalidReport):
        reg.status_reported(a, MemberStatus(points=1, sessions=0), 3.1)
    with pytest.raises(IllegalTransition) as info_:
        reg.heard(a, 3.1)
    assert info_.value.state is MemberState.EVICTED and info_.value.event is MemberEvent.HEARD


def test_status_updates_fields_and_fresh_load():
    reg = make()
    a = join(reg, b"a" * 32, "a", 0.0)
    reg.note_redirect(a, 0.5)
    reg.note_redirect(a, 0.5)
    assert reg.candidates(0.6)[1].pending == 2
    st = MemberStatus(points=99_998, sessions=1, tcp_connections=3, tickets_outstanding=1,
                      hubs=(HubInstance(name="Hub", dynamic=False, sessions=1),))
    reg.status_reported(a, st, 1.0)
    m = reg.get(a)
    assert (m.points, m.sessions, m.tcp_connections) == (99_998, 1, 3)
    assert m.status_age(2.5) == 1.5
    c = reg.candidates(1.0)[1]
    assert (c.sessions, c.pending) == (2, 0)
    assert reg.hosting_members("HUB") == [a]


def test_update_me_and_me_never_evicted():
    reg = make()
    reg.update_me(MemberStatus(points=99_000, sessions=1000), 0.0)
    reg.handle_timer(1000.0)
    assert reg.me.state is MemberState.ONLINE and reg.me.sessions == 1000
    with pytest.raises(MemberUnknown):
        reg.heard(ME_ID, 1.0)


def test_drain_excludes_from_selection():
    reg = make()
    a = join(reg, b"a" * 32, "a", 0.0)
    reg.drain(a)
    assert reg.candidates(0.1)[1].unavailable == "draining"
    assert reg.select(0.1).chosen == ME_ID
    reg.undrain(a)
    assert reg.select(0.1).chosen == a
    with pytest.raises(IllegalTransition):
        reg.undrain(a)


def test_evicted_member_forgotten_after_forget_after_s():
    reg = make(forget_after_s=10.0)
    a = join(reg, b"a" * 32, "a", 0.0)
    reg.handle_timer(3.0)
    assert reg.next_deadline() == 13.0
    reg.handle_timer(13.0)
    assert MemberLeft(a) in reg.events()
    assert reg.next_deadline() is None


def test_fresh_load_expiry_rearms_deadline():
    reg = make()
    reg.note_redirect(ME_ID, 0.0)
    assert reg.next_deadline() == 60.0
    reg.handle_timer(60.0)
    assert reg.next_deadline() is None


def test_transition_table_rejects_unknown_moves():
    assert transition(MemberState.EVICTED, MemberEvent.LINK_OPENED) is MemberState.REJOINING
    for state in MemberState:
        for event in MemberEvent:
            if (state, event) not in TRANSITIONS:
                with pytest.raises(IllegalTransition, match=state.name):
                    transition(state, event)
    assert all(s is not MemberState.LEFT for s, _ in TRANSITIONS)
