"""Graceful drain: the Drains book alone (rate bound, drained state, bridges
stay, undrain) and driven through ControllerCore (no placement on a
draining member, its sessions listed and disconnected at the rate, drained,
undrained)."""

from __future__ import annotations

import dataclasses

from controller import core_io as ci
from controller import messages as msg
from controller.drain import SKIP_DRAINING, Disconnect, DrainOrder, Drains, DrainState, ListSessions
from controller.points import points
from controller.registry import ME_ID, MemberStatus
from tests.unit.controller.simcluster import hub_config
from tests.unit.controller.test_core import MEMBER, join, make_core, of

KEY = b"K" * 32


def row(name: str, bridge: bool = False) -> msg.SessionRow:
    return msg.SessionRow(name=name, username="u", client_ip="10.0.0.1", client_hostname="", created_time=0.0,
                          last_comm_time=0.0, tcp_connections=1, max_tcp_connections=1, packet_bytes=0,
                          packet_count=0, bridge=bridge)


def test_disconnects_are_spaced_by_the_rate_and_each_session_asked_once():
    drains = Drains()
    assert drains.configure([DrainOrder(KEY, rate=4.0)], 0.0) == ([KEY], [])
    lists, state = drains.status_reported(KEY, {"vpn": ("VPN", 10)}, 0, 0.0)
    assert lists == [ListSessions(KEY, "VPN")] and state is None  # draining from the order on
    drains.listed(KEY, "VPN", [row(f"S{i}") for i in range(10)], 0.1)
    sent: list[tuple[float, Disconnect]] = []
    now = 0.1
    for _ in range(200):  # a timer far more eager than the rate
        sent += [(now, d) for d in drains.due(now, {KEY})]
        deadline = drains.next_deadline()
        if deadline is None:
            break
        now = max(now + 0.01, deadline) if deadline > now else now + 0.01
    assert [d.name for _, d in sent] == [f"S{i}" for i in range(10)]
    gaps = [b - a for (a, _), (b, _) in zip(sent, sent[1:])]
    assert min(gaps) >= 1 / 4 - 1e-9
    # Still listed while their close is on its way: not asked again.
    for _ in sent:
        drains.disconnected(KEY)
    drains.listed(KEY, "VPN", [row("S9")], now)
    assert drains.due(now + 10, {KEY}) == [] and drains.next_deadline() is None


def test_drained_when_only_bridges_are_left_and_draining_again_if_a_session_appears():
    drains = Drains()
    drains.configure([DrainOrder(KEY)], 0.0)
    lists, _ = drains.status_reported(KEY, {"vpn": ("VPN", 1)}, 0, 0.0)
    drains.listed(KEY, "VPN", [row("BRIDGE", bridge=True)], 0.1)
    assert drains.due(0.2, {KEY}) == []  # a local bridge is not a client: it stays
    assert drains.status_reported(KEY, {"vpn": ("VPN", 1)}, 0, 0.5) == ([], DrainState.DRAINED)
    assert drains.status_reported(KEY, {"vpn": ("VPN", 1)}, 1, 1.0) == ([], DrainState.DRAINING)  # a ticket out
    lists, state = drains.status_reported(KEY, {"vpn": ("VPN", 2)}, 0, 2.0)
    assert lists == [ListSessions(KEY, "VPN")] and state is None


def test_undrain_ends_the_order_and_a_member_away_forgets_its_listing():
    drains = Drains()
    drains.configure([DrainOrder(KEY, rate=1.0)], 0.0)
    drains.status_reported(KEY, {"vpn": ("VPN", 3)}, 0, 0.0)
    drains.listed(KEY, "VPN", [row("A"), row("B"), row("C")], 0.0)
    assert [d.name for d in drains.due(0.0, {KEY})] == ["A"]
    assert drains.due(0.5, set()) == []  # not joined: nothing sent, the listing is dropped
    assert drains.due(5.0, {KEY}) == []
    assert drains.skip({KEY: 7}) == {7: SKIP_DRAINING}
    assert drains.configure([], 6.0) == ([], [KEY])
    assert drains.view(KEY) is None and drains.skip({KEY: 7}) == {}


def ready_member(core, now: float) -> int:
    """Join a member, report its first status, verify its endpoint: it takes sessions."""
    member_id = join(core, now).member_id
    poll = of(core.take_actions(), ci.Request)[1]
    core.reply_received(poll.token, msg.StatusReport(points=100_000, sessions=0, tcp_connections=0,
                                                     max_sessions=0, hubs=[]), now)
    core.endpoint_checked(member_id, True, "", now)
    core.take_actions()
    return member_id


def report(core, now: float, sessions: int) -> list[ci.Request]:
    """A poll round whose StatusPoll to the member is answered with `sessions` on hub VPN."""
    core.handle_timer(now)
    polls = [r for r in of(core.take_actions(), ci.Request) if isinstance(r.message, msg.StatusPoll)]
    for p in polls:
        core.reply_received(p.token, msg.StatusReport(
            points=100_000, sessions=sessions, tcp_connections=sessions, max_sessions=0,
            hubs=[msg.HubReport(name="VPN", dynamic=False, sessions=sessions)]), now)
    return of(core.take_actions(), ci.Request)


def test_core_places_nothing_on_a_draining_member_moves_its_sessions_at_the_rate_and_undrains():
    core = make_core(hub_config("VPN", False), controller_only=False)
    member_id = ready_member(core, 0.0)
    core.local_status(ci_status(50), 0.0)  # the controller is busier: the member wins while it may
    assert core.place_session("VPN", 0.1).member_id == member_id
    config = ci.ClusterConfig(serial=2, password_hash=b"p" * 20, controller_only=False,
                              hubs=(hub_config("VPN", False),), drains=(DrainOrder(MEMBER, rate=2.0),))
    core.configure(config, 0.2)
    assert any("draining" in log.text for log in of(core.take_actions(), ci.Log))
    assert core.place_session("VPN", 0.3).member_id == ME_ID
    lists = [r for r in report(core, 0.5, 3) if isinstance(r.message, msg.EnumSessions)]
    assert [(r.peer, r.message.hub) for r in lists] == [(MEMBER, "VPN")]
    core.reply_received(lists[0].token, msg.SessionList(sessions=[row("S1"), row("S2"), row("S3")]), 0.5)
    deletes: list[tuple[float, ci.Request]] = []
    now = 0.5
    for _ in range(100):
        core.handle_timer(now)
        for r in of(core.take_actions(), ci.Request):
            if isinstance(r.message, msg.DeleteSession):
                deletes.append((now, r))
                core.reply_received(r.token, msg.Ack(), now)
            elif isinstance(r.message, msg.StatusPoll):
                core.request_failed(r.token, "not answered in this test", now)
        now = min(core.next_deadline(), now + 0.1)
        if len(deletes) == 3:
            break
    assert [r.message.name for _, r in deletes] == ["S1", "S2", "S3"]
    assert all(b - a >= 0.5 - 1e-9 for (a, _), (b, _) in zip(deletes, deletes[1:]))
    view = core.drain_view(member_id)
    assert view is not None and view.state is DrainState.DRAINING and view.moved == 3
    report(core, now + 1, 0)
    assert core.drain_view(member_id).state is DrainState.DRAINED
    core.configure(dataclasses.replace(config, serial=3, drains=()), now + 2)
    assert core.drain_view(member_id) is None
    assert core.place_session("VPN", now + 2).member_id == member_id


def ci_status(sessions: int) -> MemberStatus:
    return MemberStatus(points=points(sessions, 100), sessions=sessions)
