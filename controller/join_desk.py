"""The join desk: join attempts in flight, failed-join limits, and which
refusals get a log line (part of controller/core.ControllerCore).

A member joins in two round trips (controller/joinauth.py): JoinHello opens
an attempt (the desk keeps its ControllerJoinAuth and the JoinInfo it
announced) and is answered with our nonce only, JoinProof closes it (our
proof goes back in JoinAccepted, to a member that proved the password
first), JoinAbort ends it as a failure. The registry only hears of a member
once its proof verified, so a stranger that sends hellos never gets a
registry entry, and never gets anything to grind the password against.

Numbers and invariants:
- at most one failed join per key every `fail_interval_s` (2 s): a hello
  from a key that failed more recently is refused without a handshake
  (JoinThrottled), so one key cannot guess the password faster than that;
- at most `max_pending` (256) open attempts; the oldest is dropped first,
  and an attempt expires `pending_ttl_s` (10 s) after its hello;
- one log line per refusal burst per key: `refusal()` says "log now"
  for the first refusal and then at most once per `log_quiet_s` (60 s),
  carrying how many refusals were not logged in between; and at most
  `max_log_lines` (20) lines per `log_quiet_s` in all, because a stranger
  gets a fresh key for free;
- failure records older than `log_quiet_s` are forgotten (bounded memory);
  they are kept in the order they were last touched, so expiry stops at the
  first live one instead of scanning all 4096 on every hello.

SoftEther checks the password in `ServerAccept` (farm_connect) and simply
closes the connection on a mismatch, logging each attempt; its member
retries every second, so its log grows by one line a second. Here the log
stays at one line per burst.

Sans-IO: `now` is a parameter (monotonic seconds); no clock reads, no I/O.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass

from controller.errors import AuthFailed, ControllerError
from controller.joinauth import ControllerJoinAuth
from controller.registry import JoinInfo
from vpnbus.auth_backoff import LogThrottle

FAIL_INTERVAL_S = 2.0
PENDING_TTL_S = 10.0
MAX_PENDING = 256
LOG_QUIET_S = 60.0
MAX_LOG_LINES = 20
MAX_FAILURE_RECORDS = 4096


class JoinThrottled(ControllerError):
    """A key that failed a join less than `fail_interval_s` ago tried again.

    Raised by `JoinDesk.hello`. The caller refuses with ACCESS_DENIED and does
    not log (the failure that caused it was logged).
    """


class NoJoinInProgress(AuthFailed):
    """A JoinProof or JoinAbort came from a key with no open attempt (never
    said hello, or its attempt expired). Raised by `JoinDesk.proof`."""


@dataclass(slots=True)
class PendingJoin:
    auth: ControllerJoinAuth
    info: JoinInfo
    started_at: float


@dataclass(slots=True)
class _Failures:
    last_failed_at: float
    logged_at: float | None = None
    unlogged: int = 0


class JoinDesk:
    """Join attempts of one controller. Keys are raw 32-byte CURVE keys."""

    def __init__(self, *, fail_interval_s: float = FAIL_INTERVAL_S, pending_ttl_s: float = PENDING_TTL_S,
                 max_pending: int = MAX_PENDING, log_quiet_s: float = LOG_QUIET_S,
                 max_log_lines: int = MAX_LOG_LINES) -> None:
        self.fail_interval_s = fail_interval_s
        self.pending_ttl_s = pending_ttl_s
        self.max_pending = max_pending
        self.log_quiet_s = log_quiet_s
        self._log = LogThrottle(log_quiet_s, max_log_lines)
        self._pending: OrderedDict[bytes, PendingJoin] = OrderedDict()
        self._failures: OrderedDict[bytes, _Failures] = OrderedDict()
        self.counters: Counter[str] = Counter()
        """attempts, accepted, refused, aborted, throttled, expired."""

    def hello(self, key: bytes, auth: ControllerJoinAuth, info: JoinInfo, nonce_m: bytes,
              now: float) -> bytes:
        """Open an attempt; return nonce_c for JoinChallenge.

        Raises JoinThrottled (failed too recently) or AuthFailed (malformed
        hello; counted as a failure). A new hello replaces an open attempt of
        the same key (the member restarted its join).
        """
        self.handle_timer(now)
        self.counters["attempts"] += 1
        failed = self._failures.get(key)
        if failed is not None and now - failed.last_failed_at < self.fail_interval_s:
            self.counters["throttled"] += 1
            raise JoinThrottled(f"a join from this key failed {now - failed.last_failed_at:.1f} s ago")
        try:
            answer = auth.receive_hello(nonce_m)
        except AuthFailed:
            self._failed(key, now)
            raise
        self._pending.pop(key, None)
        self._pending[key] = PendingJoin(auth=auth, info=info, started_at=now)
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
            self.counters["expired"] += 1
        return answer

    def proof(self, key: bytes, proof: bytes, now: float) -> tuple[JoinInfo, bytes]:
        """Close the attempt with the member's proof; return its JoinInfo and
        proof_c (our proof, for JoinAccepted).

        Raises AuthFailed (wrong proof: counted as a failure) or
        NoJoinInProgress.
        """
        self.handle_timer(now)
        pending = self._pending.pop(key, None)
        if pending is None:
            raise NoJoinInProgress("no join in progress for this key")
        try:
            proof_c = pending.auth.receive_proof(proof)
        except AuthFailed:
            self._failed(key, now)
            raise
        self.counters["accepted"] += 1
        self._failures.pop(key, None)
        return pending.info, proof_c

    def abort(self, key: bytes, now: float) -> JoinInfo | None:
        """The member gave up its attempt. Returns the attempt's JoinInfo (None if none was open)."""
        pending = self._pending.pop(key, None)
        if pending is None:
            return None
        self.counters["aborted"] += 1
        self._failed(key, now, count_refused=False)
        return pending.info

    def pending_info(self, key: bytes) -> JoinInfo | None:
        """What the open attempt of `key` announced (for log lines), if any."""
        pending = self._pending.get(key)
        return None if pending is None else pending.info

    def in_progress(self, key: bytes, now: float) -> bool:
        self.handle_timer(now)
        return key in self._pending

    def refusal(self, key: bytes, now: float) -> int | None:
        """A refusal of `key` happened: None = do not log it; else log it now,
        mentioning the returned number of refusals not logged before it (of
        this key since its last line, and of any key over the line budget)."""
        failed = self._failures.get(key)
        if failed is None:
            failed = self._record(key, now)
        skipped = self._log.decide(failed, now)
        if skipped is not None:
            self._failures.move_to_end(key)
        return skipped

    def handle_timer(self, now: float) -> None:
        for key, pending in list(self._pending.items()):
            if now - pending.started_at < self.pending_ttl_s:
                break  # insertion order is start order
            del self._pending[key]
            self.counters["expired"] += 1
        while self._failures:  # in last-touched order (see _failed, refusal)
            key, failed = next(iter(self._failures.items()))
            if now - max(failed.last_failed_at, failed.logged_at or 0.0) < self.log_quiet_s:
                break
            del self._failures[key]

    def _failed(self, key: bytes, now: float, *, count_refused: bool = True) -> None:
        if count_refused:
            self.counters["refused"] += 1
        failed = self._failures.get(key)
        if failed is None:
            self._record(key, now)
        else:
            failed.last_failed_at = now
            self._failures.move_to_end(key)

    def _record(self, key: bytes, now: float) -> _Failures:
        failed = self._failures[key] = _Failures(last_failed_at=now)
        while len(self._failures) > MAX_FAILURE_RECORDS:
            self._failures.popitem(last=False)
        return failed
