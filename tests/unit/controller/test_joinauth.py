"""Join handshake: mutual proof of the admin password hash over both CURVE keys."""

import hashlib

import pytest

from controller.errors import AuthFailed, IllegalTransition
from controller.joinauth import ControllerJoinAuth, JoinState, MemberJoinAuth, _proof

PW = hashlib.sha1(b"secret").digest()  # any 20 bytes stand for SHA0(password) here
OTHER_PW = hashlib.sha1(b"guess").digest()
K_CTL, K_MEM, K_MITM = b"C" * 32, b"M" * 32, b"X" * 32


def rng(seed):
    state = {"n": 0}

    def draw(n):
        state["n"] += 1
        return hashlib.sha256(seed + bytes([state["n"]])).digest()[:n]

    return draw


def run(member, controller):
    nonce_c = controller.receive_hello(member.hello())
    proof_c = controller.receive_proof(member.receive_challenge(nonce_c))
    member.receive_accept(proof_c)


def pair(member_pw=PW, ctl_pw=PW, member_sees_ctl=K_CTL, ctl_sees_member=K_MEM, seed=b"a"):
    m = MemberJoinAuth(member_pw, K_MEM, member_sees_ctl, random_bytes=rng(b"m" + seed))
    c = ControllerJoinAuth(ctl_pw, K_CTL, ctl_sees_member, random_bytes=rng(b"c" + seed))
    return m, c


def test_success_both_sides_done():
    m, c = pair()
    run(m, c)
    assert m.done and c.done


def test_default_random_source_works():
    m = MemberJoinAuth(PW, K_MEM, K_CTL)
    c = ControllerJoinAuth(PW, K_CTL, K_MEM)
    run(m, c)
    assert m.done and c.done


def test_controller_hands_out_nothing_before_the_member_proved_the_password():
    # Anyone may reach the controller's bus: its answer to a hello must not be
    # something a stranger could grind the password against.
    m, c = pair()
    nonce_m = m.hello()
    nonce_c = c.receive_hello(nonce_m)
    assert nonce_c == rng(b"ca")(32)  # only its random nonce
    with pytest.raises(AuthFailed):
        c.receive_proof(bytes(32))
    assert c.state is JoinState.FAILED


@pytest.mark.parametrize("member_pw,ctl_pw", [(OTHER_PW, PW), (PW, OTHER_PW)])
def test_wrong_password_on_either_side_is_refused_by_the_controller(member_pw, ctl_pw):
    m, c = pair(member_pw=member_pw, ctl_pw=ctl_pw)
    nonce_c = c.receive_hello(m.hello())
    with pytest.raises(AuthFailed):
        c.receive_proof(m.receive_challenge(nonce_c))
    assert c.state is JoinState.FAILED


def test_fake_controller_proof_rejected_by_member():
    m, c = pair()
    nonce_c = c.receive_hello(m.hello())
    m.receive_challenge(nonce_c)
    nonce_m = m._nonces[0]
    with pytest.raises(AuthFailed):
        m.receive_accept(_proof(OTHER_PW, b"ctl", K_CTL, K_MEM, nonce_m, nonce_c))
    assert m.state is JoinState.FAILED


def test_member_proof_with_wrong_password_rejected():
    m_ok, c = pair()
    nonce_m = m_ok.hello()
    nonce_c = c.receive_hello(nonce_m)
    # forge with the wrong password over the right transcript
    forged = _proof(OTHER_PW, b"mem", K_CTL, K_MEM, nonce_m, nonce_c)
    with pytest.raises(AuthFailed):
        c.receive_proof(forged)
    assert c.state is JoinState.FAILED


def test_relay_detected_by_controller():
    # A relay with its own CURVE key sits between them and forwards bytes:
    # the member dialled the relay's key, the controller sees the relay's key.
    m = MemberJoinAuth(PW, K_MEM, K_MITM, random_bytes=rng(b"m"))
    c = ControllerJoinAuth(PW, K_CTL, K_MITM, random_bytes=rng(b"c"))
    nonce_c = c.receive_hello(m.hello())
    with pytest.raises(AuthFailed):
        c.receive_proof(m.receive_challenge(nonce_c))


def test_relay_detected_by_member():
    # Even if the relay got the real controller to accept (it cannot), the
    # controller's proof over its own view of the keys fails at the member.
    m = MemberJoinAuth(PW, K_MEM, K_MITM, random_bytes=rng(b"m"))
    nonce_m = m.hello()
    nonce_c = rng(b"c")(32)
    m.receive_challenge(nonce_c)
    with pytest.raises(AuthFailed):
        m.receive_accept(_proof(PW, b"ctl", K_CTL, K_MEM, nonce_m, nonce_c))


def test_altered_member_key_detected_by_controller():
    m, c = pair(ctl_sees_member=K_MITM)
    nonce_c = c.receive_hello(m.hello())
    with pytest.raises(AuthFailed):
        c.receive_proof(m.receive_challenge(nonce_c))


def test_swapped_keys_fail():
    m = MemberJoinAuth(PW, K_CTL, K_MEM, random_bytes=rng(b"s"))  # keys in the wrong roles
    c = ControllerJoinAuth(PW, K_CTL, K_MEM, random_bytes=rng(b"t"))
    nonce_c = c.receive_hello(m.hello())
    with pytest.raises(AuthFailed):
        c.receive_proof(m.receive_challenge(nonce_c))


def test_reflected_member_proof_rejected_by_member():
    # The controller's proof is labelled: our own proof sent back is no proof.
    m, _ = pair()
    m.hello()
    proof_m = m.receive_challenge(rng(b"c")(32))
    with pytest.raises(AuthFailed):
        m.receive_accept(proof_m)


def test_replayed_member_proof_rejected():
    m1, c1 = pair(seed=b"1")
    nonce_c = c1.receive_hello(m1.hello())
    recorded = m1.receive_challenge(nonce_c)
    c1.receive_proof(recorded)
    # a new attempt draws a fresh nonce_c: the recorded proof is worthless
    _, c2 = pair(seed=b"2")
    c2.receive_hello(m1._nonces[0])
    with pytest.raises(AuthFailed):
        c2.receive_proof(recorded)


def test_replayed_controller_proof_rejected():
    m1, c1 = pair(seed=b"1")
    nonce_c = c1.receive_hello(m1.hello())
    proof_c = c1.receive_proof(m1.receive_challenge(nonce_c))
    m2, _ = pair(seed=b"2")
    m2.hello()
    m2.receive_challenge(nonce_c)
    with pytest.raises(AuthFailed):
        m2.receive_accept(proof_c)


def test_reflected_nonce_rejected():
    m, _ = pair()
    nonce_m = m.hello()
    with pytest.raises(AuthFailed, match="echoed"):
        m.receive_challenge(nonce_m)


@pytest.mark.parametrize("nonce_c", [b"\x01" * 31, b"\x01" * 33, b""])
def test_malformed_challenge(nonce_c):
    m, _ = pair()
    m.hello()
    with pytest.raises(AuthFailed, match="malformed"):
        m.receive_challenge(nonce_c)


@pytest.mark.parametrize("proof_c", [b"", b"\x00" * 31, b"\x00" * 33])
def test_malformed_accept(proof_c):
    m, _ = pair()
    m.hello()
    m.receive_challenge(b"\x01" * 32)
    with pytest.raises(AuthFailed):
        m.receive_accept(proof_c)


def test_malformed_hello_and_proof():
    _, c = pair()
    with pytest.raises(AuthFailed):
        c.receive_hello(b"short")
    _, c = pair()
    c.receive_hello(b"\x05" * 32)
    with pytest.raises(AuthFailed):
        c.receive_proof(b"")


def test_out_of_order_and_reuse():
    m, c = pair()
    with pytest.raises(IllegalTransition):
        m.receive_challenge(b"\x00" * 32)
    with pytest.raises(IllegalTransition):
        m.receive_accept(b"\x00" * 32)
    with pytest.raises(IllegalTransition):
        c.receive_proof(b"\x00" * 32)
    run(m, c)
    with pytest.raises(IllegalTransition):
        m.hello()
    with pytest.raises(IllegalTransition):
        c.receive_hello(b"\x00" * 32)


def test_bad_sizes_rejected_at_construction():
    with pytest.raises(ValueError):
        MemberJoinAuth(b"short", K_MEM, K_CTL)
    with pytest.raises(ValueError):
        ControllerJoinAuth(PW, K_CTL, b"k" * 31)
