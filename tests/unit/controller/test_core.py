"""ControllerCore fed by hand: join, polls on one deadline, eviction, rejoin
checks, configuration pushes, dynamic hubs placed on the controller, and the
check of a member's public endpoint before it gets sessions."""

from __future__ import annotations

import logging

import pytest

from controller import core as cc
from controller import core_io as ci
from controller import messages as msg
from controller.config_sync import SyncState
from controller.errors import AuthFailed, NoEligibleServer
from controller.join_desk import JoinThrottled
from controller.joinauth import MemberJoinAuth
from controller.registry import ME_ID, HubInstance, JoinInfo, MemberEvicted, MemberJoined, MemberStatus
from tests.unit.controller.simcluster import hub_config

KEY = b"C" * 32
MEMBER = b"M" * 32
PASSWORD = b"p" * 20


def make_core(*hubs: msg.HubConfig, controller_only: bool = True) -> cc.ControllerCore:
    config = ci.ClusterConfig(serial=1, password_hash=PASSWORD, controller_only=controller_only, hubs=hubs)
    info = JoinInfo(hostname="ctl", public_ip="127.0.0.1", public_ports=(443,))
    return cc.ControllerCore(key=KEY, info=info, config=config, now=0.0)


def hello(auth: MemberJoinAuth, **changes: object) -> msg.JoinHello:
    fields = dict(version=msg.PROTOCOL_VERSION, nonce=auth.hello(), hostname="m1", public_ip="",
                  public_ports=[443], weight=100, max_sessions=0, server_cert=b"")
    fields.update(changes)
    return msg.JoinHello(**fields)  # type: ignore[arg-type]


def join(core: cc.ControllerCore, now: float, key: bytes = MEMBER, password: bytes = PASSWORD,
         **changes: object) -> msg.JoinAccepted:
    auth = MemberJoinAuth(password, key, KEY)
    challenge = core.receive(key, "10.0.0.9", hello(auth, **changes), now)
    assert isinstance(challenge, msg.JoinChallenge)
    accepted = core.receive(key, "10.0.0.9", msg.JoinProof(proof=auth.receive_challenge(challenge.nonce)), now)
    assert isinstance(accepted, msg.JoinAccepted)
    auth.receive_accept(accepted.proof)
    return accepted


def of(actions: list[ci.Action], kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


def test_join_pushes_the_config_then_polls_after_the_reply():
    core = make_core(hub_config("VPN", False))
    core.take_actions()
    accepted = join(core, 1.0)
    actions = core.take_actions()
    requests = of(actions, ci.Request)
    # The configuration first: a probe of the member's serial (an empty delta), then its status.
    assert [type(r.message) for r in requests] == [msg.ConfigDelta, msg.StatusPoll]
    assert requests[0].message == msg.ConfigDelta(base_serial=1, serial=1, changes=[]) and requests[0].peer == MEMBER
    core.reply_received(requests[0].token, msg.ConfigAck(serial=-1), 1.0)  # holds nothing: a full sync
    (chunk,) = of(core.take_actions(), ci.Request)
    assert chunk.message == msg.ConfigChunk(sync_id=1, serial=1, index=0, count=1, hubs=[hub_config("VPN", False)])
    assert [type(e.event) for e in of(actions, ci.ClusterEvent)] == [MemberJoined]
    member = core.registry.get(accepted.member_id)
    assert member.public_ip == "10.0.0.9"  # "" in the hello: the address its link comes from
    assert of(actions, ci.CheckEndpoint) == [ci.CheckEndpoint(accepted.member_id, "10.0.0.9", (443,), b"")]
    # Its first report and a verified endpoint make it selectable.
    core.reply_received(requests[1].token, msg.StatusReport(points=100_000, sessions=0, tcp_connections=0,
                                                             max_sessions=0, hubs=[]), 1.1)
    core.endpoint_checked(accepted.member_id, True, "", 1.1)
    assert core.place_session("VPN", 1.2).member_id == accepted.member_id


def test_wrong_password_is_refused_logged_once_and_throttled():
    core = make_core()
    with pytest.raises(AuthFailed):
        join(core, 0.0, password=b"x" * 20)
    logs = of(core.take_actions(), ci.Log)
    assert len(logs) == 1 and logs[0].level == logging.WARNING and "join refused" in logs[0].text
    with pytest.raises(JoinThrottled):
        join(core, 1.0)
    assert core.registry.by_key(MEMBER) is None
    join(core, 2.5)  # the right password, after the throttle
    assert core.registry.by_key(MEMBER) is not None


def _guess(core: cc.ControllerCore, key: bytes, address: str, password: bytes, now: float) -> object:
    auth = MemberJoinAuth(password, key, KEY)
    challenge = core.receive(key, address, hello(auth), now)
    assert isinstance(challenge, msg.JoinChallenge)
    return core.receive(key, address, msg.JoinProof(proof=auth.receive_challenge(challenge.nonce)), now)


def test_a_fresh_key_per_guess_is_throttled_by_its_address():
    """Issue 13 finding 6: the desk's throttle is per CURVE key, and a key
    is free to make (~19 guesses/s); the address backs off too."""
    core = make_core()
    refused = 0
    for n in range(40):
        key = bytes([n + 1]) * 32
        try:
            _guess(core, key, "198.51.100.9", b"x" * 20, now=0.01 * n)
        except JoinThrottled:
            continue
        except AuthFailed:
            refused += 1
    assert refused <= 6      # the rest were throttled before any password work
    with pytest.raises(JoinThrottled):
        _guess(core, b"Z" * 32, "198.51.100.9", PASSWORD, now=0.5)
    assert isinstance(_guess(core, MEMBER, "10.0.0.9", PASSWORD, now=0.5), msg.JoinAccepted)   # another address


def test_hello_with_another_protocol_or_a_huge_certificate_is_refused():
    core = make_core()
    for at, bad in ((0.0, dict(version=1)), (10.0, dict(server_cert=b"c" * (cc.MAX_SERVER_CERT_BYTES + 1)))):
        with pytest.raises(AuthFailed):
            core.receive(MEMBER, "", hello(MemberJoinAuth(PASSWORD, MEMBER, KEY), **bad), at)


def test_polls_run_on_the_core_deadline_and_one_per_member_in_flight():
    core = make_core()
    join(core, 0.0)
    join_poll = of(core.take_actions(), ci.Request)[1]
    assert core.next_deadline() == 0.0  # the first round is due at start
    core.handle_timer(0.0)
    first = core.take_actions()
    assert of(first, ci.PollLocal) and not of(first, ci.Request)  # the join's poll is still in flight
    assert core.next_deadline() == pytest.approx(cc.POLL_INTERVAL_S)
    core.request_failed(join_poll.token, "timed out", 0.4)
    core.handle_timer(0.5)
    assert [type(r.message) for r in of(core.take_actions(), ci.Request)] == [msg.StatusPoll]


def test_silent_member_is_evicted_told_to_rejoin_and_forgotten():
    core = make_core()
    member_id = join(core, 0.0).member_id
    core.take_actions()
    core.handle_timer(3.0)
    actions = core.take_actions()
    assert [type(e.event) for e in of(actions, ci.ClusterEvent)][-1] is MemberEvicted
    sends = of(actions, ci.Send)
    assert sends and isinstance(sends[0].message, msg.Rejoin) and sends[0].peer == MEMBER
    assert of(actions, ci.Forget) == [ci.Forget(MEMBER)]
    assert [m.member_id for m in core.listed_members(3.0)] == [ME_ID]
    assert join(core, 4.0).member_id == member_id  # same key, same id


def test_a_member_whose_bus_connection_closed_is_evicted_without_waiting_for_silence():
    core = make_core()
    join(core, 0.0)
    core.take_actions()
    core.peer_gone(b"S" * 32, 0.4)  # a stranger's connection: nobody to evict
    assert not of(core.take_actions(), ci.ClusterEvent)
    core.peer_gone(MEMBER, 0.5)
    actions = core.take_actions()
    evicted = [e.event for e in of(actions, ci.ClusterEvent)]
    assert evicted == [MemberEvicted(evicted[0].member_id, 0.5, (), disconnected=True)]
    assert of(actions, ci.Forget) == [ci.Forget(MEMBER)]
    assert [m.member_id for m in core.listed_members(0.5)] == [ME_ID]
    assert [a.text for a in of(actions, ci.Log)] == ["member m1 (id 2) closed its connection: out of load balancing "
                                                    "(hubs: none)"]


def test_a_stranger_that_talks_as_if_joined_is_told_to_rejoin():
    core = make_core()
    with pytest.raises(cc.NotJoined):
        core.receive(MEMBER, "", msg.Leave(reason="x"), 0.0)
    assert isinstance(of(core.take_actions(), ci.Send)[0].message, msg.Rejoin)
    core.peer_seen(MEMBER, 1.0)  # heartbeats only (it thinks it is joined)
    assert core.next_deadline() <= 1.0 + cc.REJOIN_GRACE_S
    core.handle_timer(1.0 + cc.REJOIN_GRACE_S)
    assert [s.message.reason for s in of(core.take_actions(), ci.Send)] == [
        "not joined (evicted or unknown to this controller)"]
    # A peer that is joining by then is left alone.
    core.peer_seen(MEMBER, 5.0)
    auth = MemberJoinAuth(PASSWORD, MEMBER, KEY)
    core.receive(MEMBER, "", hello(auth), 5.5)
    core.handle_timer(5.0 + cc.REJOIN_GRACE_S)
    assert not of(core.take_actions(), ci.Send)


def test_configuration_changes_are_pushed_to_every_member():
    core = make_core()
    member_id = join(core, 0.0).member_id
    (probe,) = [r for r in of(core.take_actions(), ci.Request) if isinstance(r.message, msg.ConfigDelta)]
    core.reply_received(probe.token, msg.ConfigAck(serial=1), 0.1)  # it holds serial 1 already
    assert core.sync_status(member_id).state is SyncState.IN_SYNC
    config = ci.ClusterConfig(serial=7, password_hash=PASSWORD, controller_only=True,
                              hubs=(hub_config("D", True),))
    core.configure(config, 1.0)
    (push,) = [r for r in of(core.take_actions(), ci.Request) if isinstance(r.message, msg.ConfigDelta)]
    assert push.message == msg.ConfigDelta(base_serial=1, serial=7, changes=[
        msg.HubChange(hub="D", settings=hub_config("D", True))])
    assert core.placement.is_dynamic("D")
    core.request_failed(push.token, "request timed out", 1.5)
    (line,) = of(core.take_actions(), ci.Log)
    assert "request timed out" in line.text and "controller 7" in line.text
    status = core.sync_status(member_id)
    assert status.state is SyncState.FAILED and "request timed out" in status.text()
    # Retried after the backoff: the member's serial is probed again (the delta may have landed).
    core.handle_timer(2.5)
    (retry,) = [r for r in of(core.take_actions(), ci.Request) if isinstance(r.message, msg.ConfigDelta)]
    assert retry.message.base_serial == retry.message.serial == 7


def test_dynamic_hub_placed_on_the_controller_is_a_local_instance():
    core = make_core(hub_config("D", True), controller_only=False)
    core.take_actions()
    assert core.place_session("D", 0.1).member_id == ME_ID
    assert of(core.take_actions(), ci.SetLocalInstance) == [ci.SetLocalInstance("D", running=True)]
    empty = MemberStatus(points=100_000, sessions=0, hubs=(HubInstance(name="D", dynamic=True, sessions=0),))
    core.local_status(empty, 61.0)  # still empty after the create history
    assert of(core.take_actions(), ci.SetLocalInstance) == [ci.SetLocalInstance("D", running=False)]


def test_leave_drains_then_forgets_the_route():
    core = make_core()
    join(core, 0.0)
    core.take_actions()
    assert core.receive(MEMBER, "", msg.Leave(reason="mode change"), 1.0) == msg.Ack()
    actions = core.take_actions()
    assert of(actions, ci.Forget) == [ci.Forget(MEMBER)]
    assert [m.member_id for m in core.listed_members(1.0)] == [ME_ID]


def report(core: cc.ControllerCore, token: int, now: float, sessions: int = 0) -> None:
    core.reply_received(token, msg.StatusReport(points=100_000 - sessions * 100, sessions=sessions,
                                                tcp_connections=0, max_sessions=0, hubs=[]), now)


def joined_members(core: cc.ControllerCore, *keys: bytes, now: float = 0.0) -> list[int]:
    """Join each key, answer its first poll and its endpoint check (it is then selectable)."""
    ids = []
    for key in keys:
        ids.append(join(core, now, key=key).member_id)
        actions = core.take_actions()
        (poll,) = [r for r in of(actions, ci.Request) if isinstance(r.message, msg.StatusPoll)]
        report(core, poll.token, now)
        for check in of(actions, ci.CheckEndpoint):
            core.endpoint_checked(check.member_id, True, "", now)
    return ids


LOGIN = ci.LoginRequest(hub="VPN", user_name="alice", real_user_name="alice")


def test_a_login_is_redirected_once_the_member_stored_its_ticket():
    core = make_core(hub_config("VPN", False))
    (m1,) = joined_members(core, MEMBER)
    login_id = core.place_login(LOGIN, 1.0)
    (create,) = of(core.take_actions(), ci.Request)
    assert isinstance(create.message, msg.CreateTicket) and create.peer == MEMBER
    assert create.timeout_s == cc.TICKET_ACK_TIMEOUT_S and create.message.session_name == "SID-ALICE-1"
    core.reply_received(create.token, msg.TicketCreated(points=99_900), 1.1)
    (placed,) = of(core.take_actions(), ci.LoginPlaced)
    assert placed.login_id == login_id and isinstance(placed.outcome, ci.RedirectTo)
    assert placed.outcome.member_id == m1 and placed.outcome.ticket == create.message.ticket
    assert placed.outcome.ip == "10.0.0.9" and placed.outcome.ports == (443,)


def test_a_member_that_does_not_store_the_ticket_is_skipped_for_the_next():
    core = make_core(hub_config("VPN", False))
    first, second = joined_members(core, MEMBER, b"N" * 32)
    core.place_login(LOGIN, 1.0)
    (create,) = of(core.take_actions(), ci.Request)
    tried = core.registry.by_key(create.peer).member_id
    core.request_failed(create.token, "request timed out", 1.5)
    (retry,) = of(core.take_actions(), ci.Request)
    assert core.registry.by_key(retry.peer).member_id == ({first, second} - {tried}).pop()
    core.request_failed(retry.token, "unreachable", 1.6)
    (placed,) = of(core.take_actions(), ci.LoginPlaced)
    assert isinstance(placed.outcome, ci.LoginFailed)  # nobody left: never a hang
    assert "did not store the ticket" in str(placed.outcome.error)


def test_the_controller_keeps_a_login_it_chose_and_an_unknown_hub_fails():
    core = make_core(hub_config("VPN", False), controller_only=False)
    core.take_actions()
    core.place_login(LOGIN, 0.5)
    assert [p.outcome for p in of(core.take_actions(), ci.LoginPlaced)] == [ci.KeepLocal(session_name="SID-ALICE-1")]
    core.place_login(ci.LoginRequest(hub="nope", user_name="a", real_user_name="a"), 0.6)
    (placed,) = of(core.take_actions(), ci.LoginPlaced)
    assert isinstance(placed.outcome, ci.LoginFailed)


# ----- the member's public endpoint -------------------------------------------------------

IDLE = msg.StatusReport(points=100_000, sessions=0, tcp_connections=0, max_sessions=0, hubs=[])


def answer_polls(core: cc.ControllerCore, actions: list[ci.Action], now: float) -> list[ci.Action]:
    for r in of(actions, ci.Request):
        if isinstance(r.message, msg.StatusPoll):
            core.reply_received(r.token, IDLE, now)
    return actions


def run(core: cc.ControllerCore, start: float, end: float) -> list[ci.Action]:
    """Timer ticks every 0.5 s from `start` to `end` with the member answering every poll (alive)."""
    actions: list[ci.Action] = []
    now = start
    while now <= end:
        core.handle_timer(now)
        actions += answer_polls(core, core.take_actions(), now)
        now += 0.5
    return actions


def joined_and_reported(core: cc.ControllerCore, now: float, **changes: object) -> tuple[int, list[ci.Action]]:
    """Join and answer its first poll; returns its id and the actions of the join (CheckEndpoint among them)."""
    member_id = join(core, now, **changes).member_id
    return member_id, answer_polls(core, core.take_actions(), now)


def skipped(core: cc.ControllerCore, now: float) -> str | None:
    """Why placement skipped the member (None: it was chosen)."""
    try:
        decision = core.place_session("VPN", now)
    except NoEligibleServer as exc:
        views = {v.server_id: v.skipped for v in exc.decision.candidates}
        return views[2]
    assert decision.member_id == 2
    return None


def test_a_member_gets_sessions_only_once_its_endpoint_answers_and_is_rechecked_while_failing():
    core = make_core(hub_config("VPN", False))
    member_id, actions = joined_and_reported(core, 0.0, public_ip="192.0.2.7", public_ports=[5555, 443],
                                             server_cert=b"der")
    check = ci.CheckEndpoint(member_id, "192.0.2.7", (5555, 443), b"der")
    assert of(actions, ci.CheckEndpoint) == [check]
    assert skipped(core, 0.1) == "endpoint not verified"
    core.endpoint_checked(member_id, False, "192.0.2.7:5555: connection refused", 0.2)
    (line,) = of(core.take_actions(), ci.Log)
    assert line.level == logging.WARNING and "every 30 s" in line.text \
        and "192.0.2.7 port 5555,443 failed: 192.0.2.7:5555: connection refused" in line.text
    assert skipped(core, 0.3) == "endpoint failed: 192.0.2.7:5555: connection refused"
    # Checked again every 30 s while it fails; a log line only when the verdict changes.
    assert core.next_deadline() <= 0.2 + cc.ENDPOINT_RECHECK_S
    actions = run(core, 0.5, 30.0)
    assert not of(actions, ci.CheckEndpoint) and not of(actions, ci.Log)
    assert of(run(core, 30.5, 30.5), ci.CheckEndpoint) == [check]
    core.endpoint_checked(member_id, False, "192.0.2.7:5555: connection refused", 30.6)
    assert not of(core.take_actions(), ci.Log)
    assert skipped(core, 30.7) == "endpoint failed: 192.0.2.7:5555: connection refused"
    assert of(run(core, 31.0, 61.0), ci.CheckEndpoint) == [check]  # at 60.6
    core.endpoint_checked(member_id, True, "", 61.1)
    (line,) = of(core.take_actions(), ci.Log)
    assert line.level == logging.INFO and "verified again: back in load balancing" in line.text
    assert skipped(core, 61.2) is None
    assert not of(run(core, 61.5, 125.0), ci.CheckEndpoint)  # a good endpoint is not checked again


def test_a_rejoin_keeps_the_verdict_unless_ip_ports_or_certificate_changed():
    core = make_core(hub_config("VPN", False))
    member_id, _ = joined_and_reported(core, 0.0)
    core.endpoint_checked(member_id, True, "", 0.1)
    core.take_actions()
    # The same endpoint: no new check, selectable after its first status as before.
    _, actions = joined_and_reported(core, 1.0)
    assert not of(actions, ci.CheckEndpoint) and skipped(core, 1.1) is None
    for at, change in ((2.0, dict(public_ports=[444])), (3.0, dict(public_ip="10.0.0.10")),
                       (4.0, dict(server_cert=b"new"))):
        _, actions = joined_and_reported(core, at, **change)
        assert len(of(actions, ci.CheckEndpoint)) == 1, change
        assert skipped(core, at + 0.1) == "endpoint not verified"
        core.endpoint_checked(member_id, True, "", at + 0.2)
        core.take_actions()
    # A failed verdict is kept by a rejoin too, and checked again 30 s after it (not at once).
    (check,) = of(joined_and_reported(core, 5.0, public_ports=[445])[1], ci.CheckEndpoint)
    core.endpoint_checked(member_id, False, "timed out", 5.1)
    core.handle_timer(9.0)  # evicted (silent since 5.0): not checked while it is away
    core.take_actions()
    core.handle_timer(5.1 + cc.ENDPOINT_RECHECK_S)
    assert not of(core.take_actions(), ci.CheckEndpoint)
    _, actions = joined_and_reported(core, 40.0, public_ports=[445])
    assert not of(actions, ci.CheckEndpoint) and skipped(core, 40.1) == "endpoint failed: timed out"
    assert not of(run(core, 40.5, 69.5), ci.CheckEndpoint)
    assert of(run(core, 70.0, 70.0), ci.CheckEndpoint) == [check]


def test_a_verdict_nobody_asked_for_or_about_an_old_endpoint_is_ignored():
    core = make_core(hub_config("VPN", False))
    member_id, _ = joined_and_reported(core, 0.0)
    core.endpoint_checked(member_id, True, "", 0.1)
    assert len(of(core.take_actions(), ci.Log)) == 1
    core.endpoint_checked(member_id, False, "late duplicate", 0.2)  # no check in flight
    core.endpoint_checked(99, True, "", 0.2)  # unknown member
    core.endpoint_checked(ME_ID, False, "x", 0.2)
    assert skipped(core, 0.3) is None and not of(core.take_actions(), ci.Log)
    # Rejoined with another port while the check of the previous one ran: one check of the newest.
    joined_and_reported(core, 1.0, public_ports=[444])
    _, actions = joined_and_reported(core, 1.1, public_ports=[445])
    assert [c.ports for c in of(actions, ci.CheckEndpoint)] == [(445,)]
    core.endpoint_checked(member_id, True, "", 1.2)
    assert skipped(core, 1.3) is None and core.registry.get(member_id).endpoint_checked == ("10.0.0.9", (445,), b"")


# ----- arrivals: clients that come back, tickets nobody redeems ------------------------------

BOB = ci.LoginRequest(hub="VPN", user_name="bob", real_user_name="bob", client_ip="192.0.2.7", unique_id=b"u" * 20)


def redirect(core: cc.ControllerCore, login: ci.LoginRequest, now: float) -> int:
    """Place `login`, the member storing its ticket; returns the member it was sent to."""
    core.place_login(login, now)
    (create,) = of(core.take_actions(), ci.Request)
    core.reply_received(create.token, msg.TicketCreated(points=99_900), now)
    (placed,) = of(core.take_actions(), ci.LoginPlaced)
    assert isinstance(placed.outcome, ci.RedirectTo)
    return placed.outcome.member_id


def test_a_client_that_comes_back_goes_to_another_member_if_there_is_one():
    core = make_core(hub_config("VPN", False))
    light, busy = joined_members(core, MEMBER, b"N" * 32)
    core.handle_timer(0.5)
    for r in of(core.take_actions(), ci.Request):   # the second member is far busier
        report(core, r.token, 0.5, sessions=0 if r.peer == MEMBER else 900)
    assert redirect(core, BOB, 0.6) == light
    # Its session there ended (or never began): not the same member again,
    # though that one still has the most points ...
    assert redirect(core, BOB, 1.0) == busy
    # ... a client without a machine id cannot be told apart from its neighbours
    anonymous = ci.LoginRequest(hub="VPN", user_name="bob", real_user_name="bob", client_ip="192.0.2.7")
    assert redirect(core, anonymous, 1.2) == light
    # ... and when the other member is gone, the one it came back from is better than none.
    core.handle_timer(10.0)
    core.take_actions()
    (alone,) = joined_members(core, MEMBER, now=10.0)
    assert redirect(core, BOB, 10.5) == alone
    assert redirect(core, BOB, 11.0) == alone


def test_a_dynamic_hub_is_not_split_for_a_client_that_comes_back():
    core = make_core(hub_config("DYN", True))
    joined_members(core, MEMBER, b"N" * 32)
    login = ci.LoginRequest(hub="DYN", user_name="bob", real_user_name="bob", client_ip="192.0.2.7",
                            unique_id=b"u" * 20)
    core.place_login(login, 1.0)
    actions = core.take_actions()
    (create,) = [r for r in of(actions, ci.Request) if isinstance(r.message, msg.CreateTicket)]
    core.reply_received(create.token, msg.TicketCreated(points=99_900), 1.0)
    host = core.placement.hub_host("DYN")
    core.place_login(login, 2.0)
    (again,) = [r for r in of(core.take_actions(), ci.Request) if isinstance(r.message, msg.CreateTicket)]
    assert core.registry.by_key(again.peer).member_id == host == core.placement.hub_host("DYN")


def test_tickets_unredeemed_while_clients_are_sent_take_the_member_out_until_checked():
    core = make_core(hub_config("VPN", False))
    (m,) = joined_members(core, MEMBER)
    redirect(core, LOGIN, 1.0)

    def reported(now: float, outstanding: int) -> list[ci.Action]:
        core.handle_timer(now)
        actions = core.take_actions()
        for r in of(actions, ci.Request):
            if isinstance(r.message, msg.StatusPoll):
                core.reply_received(r.token, msg.StatusReport(points=100_000, sessions=0, tcp_connections=0,
                                                              max_sessions=0, hubs=[],
                                                              tickets_outstanding=outstanding), now)
        return actions + core.take_actions()

    assert not of(reported(1.0, 1) + reported(2.5, 1), ci.CheckEndpoint)
    actions = reported(3.0, 1)
    assert of(actions, ci.CheckEndpoint) == [ci.CheckEndpoint(m, "10.0.0.9", (443,), b"")]
    assert any("have not arrived" in log.text for log in of(actions, ci.Log))
    with pytest.raises(NoEligibleServer, match="redirected clients did not arrive"):
        core.place_session("VPN", 3.1)
    core.endpoint_checked(m, False, "timed out", 3.2)
    with pytest.raises(NoEligibleServer, match="endpoint failed: timed out"):
        core.place_session("VPN", 3.3)
    (check,) = of(run(core, 3.5, 34.0), ci.CheckEndpoint)   # alive all along
    core.endpoint_checked(check.member_id, True, "", 34.0)
    assert core.place_session("VPN", 34.1).member_id == m
