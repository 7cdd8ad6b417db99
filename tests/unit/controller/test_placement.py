"""Hub placement: static everywhere, dynamic on one member, stop when empty."""

import pytest

from controller.errors import HubTypeImmutable, HubUnknown, IllegalTransition, NoEligibleServer
from controller.placement import (
    HUB_TRANSITIONS,
    CreateHubInstance,
    DeleteHubInstance,
    HubEvent,
    HubLife,
    Placement,
    hub_transition,
)
from controller.registry import ME_ID, HubInstance, JoinInfo, MemberStatus, Registry


def info(name, weight=100):
    return JoinInfo(hostname=name, public_ip="127.0.0.2", public_ports=(443,), weight=weight)


@pytest.fixture
def cluster():
    reg = Registry(b"K" * 32, info("ctl"), 0.0)
    ids = []
    for i, w in enumerate((100, 100)):
        mid = reg.link_opened(bytes([i]) * 32, 0.0)
        reg.joined(mid, info(f"m{i}", w), 0.0)
        reg.status_reported(mid, MemberStatus(points=100_000, sessions=0), 0.0)
        reg.endpoint_checked(mid, True, "")
        ids.append(mid)
    return reg, Placement(reg, controller_only=True), ids


def report(reg, place, mid, now, sessions=0, hubs=()):
    st = MemberStatus(points=100_000 - sessions * 100, sessions=sessions,
                      hubs=tuple(HubInstance(name=n, dynamic=d, sessions=s) for n, d, s in hubs))
    reg.status_reported(mid, st, now)
    return place.status_reported(mid, now)


def test_static_hub_listed_on_every_server_without_actions(cluster):
    # Every server runs its static hubs from the pushed config: placement only lists them.
    reg, place, (a, b) = cluster
    assert place.hub_created("VPN", dynamic=False) == []
    assert reg.hosting_members("vpn") == [ME_ID, a, b]
    assert place.hub_created("vpn", dynamic=False) == []
    with pytest.raises(HubTypeImmutable):
        place.hub_created("VPN", dynamic=True)
    c = reg.link_opened(b"c" * 32, 1.0)
    reg.joined(c, info("c"), 1.0)
    place.member_joined(c)
    assert reg.hosting_members("VPN") == [ME_ID, a, b, c]


def test_static_session_goes_to_highest_points_admin_stays(cluster):
    reg, place, (a, b) = cluster
    place.hub_created("VPN", dynamic=False)
    report(reg, place, b, 0.5, sessions=3, hubs=[("VPN", False, 3)])
    d = place.place_session("vpn", 0.6)
    assert d.member_id == a and d.actions == () and d.selection.chosen == a
    assert "static hub" in d.reason
    assert place.place_session("VPN", 0.6, admin=True).member_id == ME_ID


def test_dynamic_hub_started_once_then_reused(cluster):
    reg, place, (a, b) = cluster
    place.hub_created("D", dynamic=True)
    assert place.hub_life("D") is HubLife.ABSENT
    d1 = place.place_session("D", 1.0)
    assert d1.member_id == b  # tie: later entry
    assert d1.actions == (CreateHubInstance(member_id=b, hub="D", dynamic=True),)
    assert place.hub_life("D") is HubLife.STARTING
    # a status report sent before the create arrived does not lose the host
    assert report(reg, place, b, 1.1) == []
    d2 = place.place_session("D", 1.2)
    assert d2.member_id == b and d2.actions == ()
    assert report(reg, place, b, 2.0, 1, hubs=[("D", True, 1)]) == []
    assert place.hub_life("D") is HubLife.RUNNING
    assert not place.in_create_history("D", 2.0)


def test_dynamic_hub_stops_when_empty(cluster):
    reg, place, (a, b) = cluster
    place.hub_created("D", dynamic=True)
    place.place_session("D", 1.0)
    report(reg, place, b, 2.0, 1, hubs=[("D", True, 1)])
    actions = report(reg, place, b, 3.0, 0, hubs=[("D", True, 0)])
    assert actions == [DeleteHubInstance(member_id=b, hub="D", reason="dynamic hub has no sessions")]
    assert place.hub_life("D") is HubLife.STOPPING
    assert report(reg, place, b, 4.0) == []
    assert place.hub_life("D") is HubLife.ABSENT and place.hub_host("D") is None


def test_empty_dynamic_hub_kept_during_create_history(cluster):
    reg, place, (a, b) = cluster
    place.hub_created("D", dynamic=True)
    place.place_session("D", 1.0)
    assert place.next_deadline() == 61.0
    assert report(reg, place, b, 60.9, hubs=[("D", True, 0)]) == []
    assert report(reg, place, b, 61.0, hubs=[("D", True, 0)]) == [
        DeleteHubInstance(member_id=b, hub="D", reason="dynamic hub has no sessions")
    ]
    assert place.hub_life("D") is HubLife.STOPPING


def test_session_while_stopping_starts_new_instance(cluster):
    reg, place, (a, b) = cluster
    place.hub_created("D", dynamic=True)
    place.place_session("D", 1.0)
    report(reg, place, b, 2.0, 1, hubs=[("D", True, 1)])
    report(reg, place, b, 3.0, 0, hubs=[("D", True, 0)])
    d = place.place_session("D", 3.1)
    assert d.actions and d.actions[0].hub == "D"
    assert place.hub_life("D") is HubLife.STARTING


def test_host_evicted_makes_hub_absent_and_replaced(cluster):
    reg, place, (a, b) = cluster
    place.hub_created("D", dynamic=True)
    place.place_session("D", 1.0)
    report(reg, place, b, 2.0, 1, hubs=[("D", True, 1)])
    reg.heard(a, 4.5)
    reg.handle_timer(5.0)
    place.member_gone(b)
    assert place.hub_life("D") is HubLife.ABSENT
    d = place.place_session("D", 5.0)
    assert d.member_id == a and d.actions
    # b comes back still holding sessions: its duplicate instance is deleted
    reg.link_opened(bytes([1]) * 32, 6.0)
    reg.joined(b, info("m1"), 6.0)
    got = report(reg, place, b, 6.1, 1, hubs=[("D", True, 1)])
    assert got == [DeleteHubInstance(member_id=b, hub="D", reason="duplicate dynamic hub instance")]
    assert place.hub_host("D") == a


def test_host_relinking_before_eviction_loses_hub(cluster):
    reg, place, (a, b) = cluster
    place.hub_created("D", dynamic=True)
    place.place_session("D", 1.0)
    report(reg, place, b, 1.5, 1, hubs=[("D", True, 1)])
    reg.link_opened(bytes([1]) * 32, 2.0)  # b restarted quickly: REJOINING
    reg.heard(a, 2.0)
    d = place.place_session("D", 2.1)
    assert d.member_id == a and d.actions == (CreateHubInstance(member_id=a, hub="D", dynamic=True),)
    assert place.hub_life("D") is HubLife.STARTING


def test_rejoining_member_adopted_when_no_other_host(cluster):
    reg, place, (a, b) = cluster
    place.hub_created("D", dynamic=True)
    assert report(reg, place, a, 1.0, 2, hubs=[("D", True, 2)]) == []
    assert place.hub_life("D") is HubLife.RUNNING and place.hub_host("D") == a
    assert place.place_session("D", 1.1).member_id == a


def test_unknown_reported_hub_deleted(cluster):
    reg, place, (a, b) = cluster
    assert report(reg, place, a, 1.0, hubs=[("Ghost", False, 0)]) == [
        DeleteHubInstance(member_id=a, hub="Ghost", reason="unknown hub")
    ]


def test_hub_deleted_stops_all_instances(cluster):
    reg, place, (a, b) = cluster
    place.hub_created("D", dynamic=True)
    report(reg, place, a, 1.0, sessions=1, hubs=[("D", True, 1)])
    assert place.hub_deleted("d") == [DeleteHubInstance(member_id=a, hub="D", reason="hub deleted")]
    place.hub_created("VPN", dynamic=False)
    assert place.hub_deleted("vpn") == []  # static: the pushed config ends them
    assert reg.hosting_members("VPN") == []
    with pytest.raises(HubUnknown):
        place.place_session("VPN", 1.0)
    with pytest.raises(HubUnknown):
        place.hub_deleted("VPN")


def test_no_eligible_server(cluster):
    reg, place, (a, b) = cluster
    place.hub_created("D", dynamic=True)
    reg.handle_timer(10.0)
    with pytest.raises(NoEligibleServer):
        place.place_session("D", 10.0)
    assert place.hub_life("D") is HubLife.ABSENT


def test_hub_life_table():
    assert hub_transition(HubLife.ABSENT, HubEvent.PLACED) is HubLife.STARTING
    for state in HubLife:
        for event in HubEvent:
            if (state, event) not in HUB_TRANSITIONS:
                with pytest.raises(IllegalTransition, match=event.name):
                    hub_transition(state, event)


def test_sync_hubs_follows_the_config(cluster):
    reg, place, (a, b) = cluster
    assert place.sync_hubs({"S1": False, "D1": True}) == []
    assert reg.hosting_members("s1") == [ME_ID, a, b]
    assert place.sync_hubs({"s1": False, "D1": True}) == []  # names compare case-insensitively
    d = place.place_session("D1", 1.0)
    # D1 deleted (its instance stops); S1 becomes dynamic: its static instances are forgotten
    assert place.sync_hubs({"S1": True}) == [DeleteHubInstance(member_id=d.member_id, hub="D1", reason="hub deleted")]
    assert place.hub_names() == ["S1"] and place.is_dynamic("S1") and reg.hosting_members("S1") == []
    d = place.place_session("S1", 1.0)
    assert d.actions and d.member_id in (a, b)  # placed like any dynamic hub
    # and static again: its dynamic instance stops, every server lists it
    assert place.sync_hubs({"S1": False}) == [DeleteHubInstance(member_id=d.member_id, hub="S1", reason="hub deleted")]
    assert reg.hosting_members("S1") == [ME_ID, a, b]
    assert place.sync_hubs({}) == [] and place.hub_names() == []
