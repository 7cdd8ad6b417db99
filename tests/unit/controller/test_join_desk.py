"""JoinDesk: join attempts, failed-join limit, one log line per refusal burst."""

import hashlib

import pytest

from controller.join_desk import JoinDesk, JoinThrottled, NoJoinInProgress
from controller.errors import AuthFailed
from controller.joinauth import ControllerJoinAuth, MemberJoinAuth
from controller.registry import JoinInfo

PW = hashlib.sha1(b"pw").digest()
OTHER_PW = hashlib.sha1(b"other").digest()
CTL, MEM = b"C" * 32, b"M" * 32
INFO = JoinInfo(hostname="m1", public_ip="127.0.0.1", public_ports=(443,))


def attempt(desk, now, member_pw=PW, key=MEM):
    member = MemberJoinAuth(member_pw, key, CTL)
    nonce_c = desk.hello(key, ControllerJoinAuth(PW, CTL, key), INFO, member.hello(), now)
    return member, nonce_c


def test_good_join_returns_info_and_closes_attempt():
    desk = JoinDesk()
    member, nonce_c = attempt(desk, 0.0)
    assert desk.in_progress(MEM, 0.1)
    info, proof_c = desk.proof(MEM, member.receive_challenge(nonce_c), 0.2)
    assert info == INFO
    member.receive_accept(proof_c)
    assert member.done
    assert not desk.in_progress(MEM, 0.3)
    assert desk.counters["accepted"] == 1


def test_wrong_password_refused_then_throttled_for_2s():
    desk = JoinDesk()
    member, nonce_c = attempt(desk, 0.0, member_pw=OTHER_PW)
    with pytest.raises(AuthFailed):
        desk.proof(MEM, member.receive_challenge(nonce_c), 0.1)
    with pytest.raises(JoinThrottled):
        attempt(desk, 1.5)
    attempt(desk, 2.2)  # allowed again after the interval
    assert desk.counters["throttled"] == 1 and desk.counters["refused"] == 1


def test_member_gives_up_then_throttled_for_2s():
    desk = JoinDesk()
    attempt(desk, 0.0)
    assert desk.abort(MEM, 0.1) == INFO
    assert desk.abort(MEM, 0.2) is None  # nothing open any more
    with pytest.raises(JoinThrottled):
        attempt(desk, 1.5)
    assert desk.counters["aborted"] == 1


def test_forged_proof_refused_and_counted():
    desk = JoinDesk()
    attempt(desk, 0.0)
    with pytest.raises(AuthFailed):
        desk.proof(MEM, bytes(32), 0.1)
    assert desk.counters["refused"] == 1
    with pytest.raises(NoJoinInProgress):
        desk.proof(MEM, bytes(32), 0.2)


def test_malformed_hello_is_a_failure():
    desk = JoinDesk()
    with pytest.raises(AuthFailed):
        desk.hello(MEM, ControllerJoinAuth(PW, CTL, MEM), INFO, b"short", 0.0)
    with pytest.raises(JoinThrottled):
        attempt(desk, 1.0)


def test_attempt_expires_and_pending_is_bounded():
    desk = JoinDesk(max_pending=3)
    for i in range(5):
        attempt(desk, 0.0, key=bytes([i]) * 32)
    assert [desk.in_progress(bytes([i]) * 32, 0.0) for i in range(5)] == [False, False, True, True, True]
    assert not desk.in_progress(bytes([4]) * 32, 10.0)


def test_one_log_line_per_burst():
    desk = JoinDesk(log_quiet_s=60.0)
    assert desk.refusal(MEM, 0.0) == 0
    assert [desk.refusal(MEM, t) for t in (2.0, 4.0, 6.0)] == [None, None, None]
    assert desk.refusal(MEM, 61.0) == 3
    assert desk.refusal(b"X" * 32, 61.0) == 0  # another key has its own burst


def test_log_lines_are_bounded_across_keys():
    # A stranger makes a fresh key for every attempt: the log still stays small.
    desk = JoinDesk(log_quiet_s=60.0, max_log_lines=20)
    logged = [desk.refusal(i.to_bytes(32, "big"), 0.0) for i in range(30)]
    assert logged == [0] * 20 + [None] * 10
    assert desk.refusal(b"Y" * 32, 59.0) is None
    assert desk.refusal(b"Z" * 32, 60.0) == 11  # budget back; the line says what it missed
    assert desk.refusal(b"Z" * 32, 60.5) is None


def test_failure_records_expire_in_last_touched_order():
    # A's record is refreshed by its log line at 30 s, so it outlives B's
    # (failed at 10 s): expiry must still drop B at 70 s, and A at 90 s.
    desk = JoinDesk(log_quiet_s=60.0)
    for key, at in ((b"A" * 32, 0.0), (b"B" * 32, 10.0)):
        attempt(desk, at, key=key)
        desk.abort(key, at)
    assert desk.refusal(b"A" * 32, 30.0) == 0
    desk.handle_timer(70.0)
    assert list(desk._failures) == [b"A" * 32]
    assert desk.refusal(b"A" * 32, 75.0) is None  # still within A's quiet time
    desk.handle_timer(135.0)
    assert not desk._failures
