"""The join handshake: mutual proof of the controller's admin password that
binds both CURVE public keys.

SoftEther's member proves the password with SHA0(SHA0(pw) || random) over
TLS that nobody authenticates (softether-protocol.md §7.2), so a man in the
middle can relay it. Here both sides prove knowledge of the 20-byte
password hash P = SHA0(admin password) (the caller computes it; this
package does not import node/) over both CURVE keys the bus really uses:

    member -> controller   nonce_m                         (32 random bytes)
    controller -> member   nonce_c                         (32 random bytes)
    member -> controller   proof_m = HMAC-SHA256(P, "mem" | K_c | K_m | nonce_m | nonce_c)
    controller -> member   proof_c = HMAC-SHA256(P, "ctl" | K_c | K_m | nonce_m | nonce_c)

K_c is the controller's CURVE public key as the member dialled it (pinned
after the first join by the node), K_m the member's key as the controller's
ZAP handler saw it. A relay in the middle holds its own CURVE keys, so one
side computes over a different key pair and the proof fails, both ways.
The labels stop a proof being reflected back; the fresh nonce of each side
stops a recorded proof being replayed. Proofs are compared with
`hmac.compare_digest`.

Who proves first matters, because one proof is enough to grind the
password offline (P is a fast hash). The controller's bus takes any CURVE
key (the join is the authentication), so anybody who reaches it could
collect a controller proof if the controller went first. So the member
goes first, as in SoftEther, and the controller only proves itself to a
member that has proved the password. A fake controller can collect a
member proof only if the member dials it: a member pins the controller's
key at its first join and never connects to another key after that.

Both sides are sans-IO objects for one attempt each: feed bytes in, take
bytes out; any failure raises AuthFailed and leaves the object FAILED; a
call out of order raises IllegalTransition.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
from collections.abc import Callable

from controller.errors import AuthFailed, IllegalTransition

NONCE_SIZE = 32
PROOF_SIZE = 32
PUBLIC_KEY_SIZE = 32
PASSWORD_HASH_SIZE = 20
_LABEL = b"vpncluster-join-v1:"


class JoinState(enum.Enum):
    START = "start"
    CHALLENGED = "challenged"
    """Member only: hello sent, waiting for the controller's nonce."""
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"


def _proof(password_hash: bytes, role: bytes, ctl_pub: bytes, member_pub: bytes,
           nonce_m: bytes, nonce_c: bytes) -> bytes:
    # Every part has a fixed length, so plain concatenation is unambiguous.
    msg = _LABEL + role + ctl_pub + member_pub + nonce_m + nonce_c
    return hmac.new(password_hash, msg, hashlib.sha256).digest()


def _check_sizes(password_hash: bytes, ctl_pub: bytes, member_pub: bytes) -> None:
    if len(password_hash) != PASSWORD_HASH_SIZE:
        raise ValueError(f"password hash must be {PASSWORD_HASH_SIZE} bytes")
    if len(ctl_pub) != PUBLIC_KEY_SIZE or len(member_pub) != PUBLIC_KEY_SIZE:
        raise ValueError(f"CURVE public keys must be {PUBLIC_KEY_SIZE} bytes")


class _Side:
    _machine = "join handshake"

    def __init__(self, password_hash: bytes, ctl_pub: bytes, member_pub: bytes,
                 random_bytes: Callable[[int], bytes]) -> None:
        _check_sizes(password_hash, ctl_pub, member_pub)
        self._pw = bytes(password_hash)
        self._ctl_pub = bytes(ctl_pub)
        self._member_pub = bytes(member_pub)
        self._random = random_bytes
        self._nonces = (b"", b"")  # (nonce_m, nonce_c) as far as known
        self.state = JoinState.START

    @property
    def done(self) -> bool:
        """True once this side has verified the peer."""
        return self.state is JoinState.DONE

    def _expect(self, state: JoinState, event: str) -> None:
        if self.state is not state:
            raise IllegalTransition(self._machine, self.state, event)

    def _nonce(self) -> bytes:
        nonce = self._random(NONCE_SIZE)
        if len(nonce) != NONCE_SIZE:
            raise ValueError(f"random source gave {len(nonce)} bytes, need {NONCE_SIZE}")
        return nonce

    def _fail(self, why: str) -> AuthFailed:
        self.state = JoinState.FAILED
        return AuthFailed(why)

    def _proof(self, role: bytes) -> bytes:
        return _proof(self._pw, role, self._ctl_pub, self._member_pub, *self._nonces)


class MemberJoinAuth(_Side):
    """The member's half. `controller_public_key` is the key it dialled."""

    _machine = "join handshake (member)"

    def __init__(self, password_hash: bytes, member_public_key: bytes, controller_public_key: bytes,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        super().__init__(password_hash, controller_public_key, member_public_key, random_bytes)

    def hello(self) -> bytes:
        """Start: return nonce_m to send to the controller."""
        self._expect(JoinState.START, "hello")
        self._nonces = (self._nonce(), b"")
        self.state = JoinState.CHALLENGED
        return self._nonces[0]

    def receive_challenge(self, nonce_c: bytes) -> bytes:
        """Take the controller's nonce; return proof_m to send back.

        Raises AuthFailed (malformed challenge, or our own nonce echoed).
        """
        self._expect(JoinState.CHALLENGED, "challenge")
        if len(nonce_c) != NONCE_SIZE:
            raise self._fail("malformed challenge from the controller")
        if nonce_c == self._nonces[0]:
            raise self._fail("controller echoed our nonce")
        self._nonces = (self._nonces[0], bytes(nonce_c))
        self.state = JoinState.WAITING
        return self._proof(b"mem")

    def receive_accept(self, controller_proof: bytes) -> None:
        """Check the controller's proof (carried by its acceptance).

        Raises AuthFailed (wrong password, other keys, malformed input).
        """
        self._expect(JoinState.WAITING, "accept")
        expected = self._proof(b"ctl")
        if len(controller_proof) != PROOF_SIZE or not hmac.compare_digest(expected, controller_proof):
            raise self._fail("controller did not prove the admin password for these keys")
        self.state = JoinState.DONE


class ControllerJoinAuth(_Side):
    """The controller's half. `member_public_key` is the ZAP-seen key."""

    _machine = "join handshake (controller)"

    def __init__(self, password_hash: bytes, controller_public_key: bytes, member_public_key: bytes,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        super().__init__(password_hash, controller_public_key, member_public_key, random_bytes)

    def receive_hello(self, nonce_m: bytes) -> bytes:
        """Answer the member's nonce with nonce_c (no proof yet). Raises AuthFailed if malformed."""
        self._expect(JoinState.START, "hello")
        if len(nonce_m) != NONCE_SIZE:
            raise self._fail("malformed hello from the member")
        nonce_c = self._nonce()
        self._nonces = (bytes(nonce_m), nonce_c)
        self.state = JoinState.WAITING
        return nonce_c

    def receive_proof(self, member_proof: bytes) -> bytes:
        """Check the member's proof; return proof_c for the acceptance. Raises AuthFailed."""
        self._expect(JoinState.WAITING, "proof")
        expected = self._proof(b"mem")
        if len(member_proof) != PROOF_SIZE or not hmac.compare_digest(expected, member_proof):
            raise self._fail("member did not prove the admin password for these keys")
        self.state = JoinState.DONE
        return self._proof(b"ctl")
