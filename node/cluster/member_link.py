"""The member's link to its controller: one state machine, no I/O.

Theory of operation. A member keeps trying to be joined to its controller
for as long as it is in member mode. Each *attempt* has a number and goes
DISCOVERING (HTTPS GET /vpncluster/bus on the controller's listener: where
the bus is, which CURVE key the controller has) → JOINING (bus connection
and the mutual password proof of controller/joinauth.py) → ONLINE. An
attempt that fails, or an online link that is lost (controller silent for
the liveness timeout, or the controller asks us to rejoin), leads to
RETRY_WAIT; the next attempt starts at

    max(start of the previous attempt + retry_interval_s, now) + jitter

with jitter uniform in [0, jitter_s]. So attempts always start at least
`retry_interval_s` (3 s) apart -- a wrong password or a controller that
refuses at once can never cause a storm -- while a link lost after a long
time online is retried at once. An attempt still unfinished after
`attempt_timeout_s` fails with ERR_CONNECT_TO_FARM_CONTROLLER.

SoftEther does the same in Server.c's connect-to-controller thread: it
counts NumTry per attempt, NumConnected per success (with
FirstConnectedTime / CurrentConnectedTime), NumFailed = NumTry -
NumConnected, sets LastError to ERR_TRYING_TO_CONNECT (47) while trying,
ERR_CONNECT_TO_FARM_CONTROLLER (48) when the controller cannot be reached
and ERR_DISCONNECTED (3) when a link drops, and waits a fixed interval
(1 s there; 3 s here, as our liveness timeout) before the next try.

Key pinning (CLUSTER.md decision 2) is decided here too: the controller key
offered by discovery must equal the pinned one (if any); otherwise the
attempt fails with ERR_CERT_NOT_TRUSTED (85) before any bus connection.

Invariants: only `_move` changes `state`, through TRANSITIONS (an event a
state does not accept raises IllegalTransition); NumTry = NumConnected +
NumFailed + (1 if an attempt is in progress else 0); results that name an
attempt other than the current one are stale and ignored; times are the
caller's monotonic `now`; one log line per change of (state, error), not
per retry.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from controller.errors import IllegalTransition
from node.softether.errors import Err

RETRY_INTERVAL_S = 3.0
JITTER_S = 0.5
ATTEMPT_TIMEOUT_S = 15.0

KEY_CHANGED_TEXT = ("controller key changed (pinned {pinned}, offered {offered}): "
                    "run ClusterSettingMember again to trust the new controller")


class LinkState(enum.Enum):
    IDLE = "idle"
    DISCOVERING = "discovering"
    JOINING = "joining"
    ONLINE = "online"
    RETRY_WAIT = "retry-wait"
    STOPPED = "stopped"


class LinkEvent(enum.Enum):
    START = "start"
    DISCOVERED = "discovered"
    """Discovery answered and the offered key is acceptable."""
    JOINED = "joined"
    """The controller accepted our join."""
    FAILED = "failed"
    """The current attempt failed (any step, or its deadline passed)."""
    LOST = "lost"
    """The online link was lost."""
    RETRY_DUE = "retry due"
    STOP = "stop"


S, E = LinkState, LinkEvent

TRANSITIONS: dict[tuple[LinkState, LinkEvent], LinkState] = {
    (S.IDLE, E.START): S.DISCOVERING,
    (S.DISCOVERING, E.DISCOVERED): S.JOINING,
    (S.DISCOVERING, E.FAILED): S.RETRY_WAIT,
    (S.JOINING, E.JOINED): S.ONLINE,
    (S.JOINING, E.FAILED): S.RETRY_WAIT,
    (S.ONLINE, E.LOST): S.RETRY_WAIT,
    (S.RETRY_WAIT, E.RETRY_DUE): S.DISCOVERING,
    **{(state, E.STOP): S.STOPPED for state in LinkState},
}

_ATTEMPTING = (S.DISCOVERING, S.JOINING)


# -- actions the edge must carry out (pulled with take_actions) ----------------

@dataclass(frozen=True, slots=True)
class Connect:
    """Start attempt `attempt`: discovery, then the join."""
    attempt: int


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Abandon attempt `attempt` (cancel it, close its bus connection)."""
    attempt: int


@dataclass(frozen=True, slots=True)
class Log:
    """One line for the operator; `warning` for failures."""
    text: str
    warning: bool = False


Action = Connect | Disconnect | Log


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """What GetFarmConnectionStatus shows; times in the caller's `now` units (0 = never)."""

    state: LinkState
    online: bool
    last_error: int
    """0 while online (as SoftEther reports it), else the last error."""
    last_error_text: str
    started_time: float
    first_connected_time: float
    current_connected_time: float
    """Start of the current online period (0 when offline)."""
    num_try: int
    num_connected: int
    num_failed: int
    member_id: int


class MemberLink:
    """The link core. Feed it results and timer ticks; pull actions."""

    def __init__(self, *, retry_interval_s: float = RETRY_INTERVAL_S, jitter_s: float = JITTER_S,
                 attempt_timeout_s: float = ATTEMPT_TIMEOUT_S,
                 rng: random.Random | None = None) -> None:
        if retry_interval_s <= 0 or jitter_s < 0 or attempt_timeout_s <= 0:
            raise ValueError("retry interval and attempt timeout must be > 0, jitter >= 0")
        self.retry_interval_s = retry_interval_s
        self.jitter_s = jitter_s
        self.attempt_timeout_s = attempt_timeout_s
        self._rng = rng or random.Random()
        self.state = LinkState.IDLE
        self.attempt = 0
        self.num_try = self.num_connected = self.num_failed = 0
        self.started_time = self.first_connected_time = self.current_connected_time = 0.0
        self.last_error = int(Err.TRYING_TO_CONNECT)
        self.last_error_text = "trying to connect"
        self.member_id = 0
        self._attempt_started = 0.0
        self._retry_at: float | None = None
        self._logged: tuple[LinkState, int] | None = None
        self._actions: list[Action] = []

    # -- inputs ---------------------------------------------------------------

    def start(self, now: float) -> None:
        """Member mode began: the first attempt starts at once."""
        self._move(E.START)
        self.started_time = now
        self._begin_attempt(now)

    def discovered(self, attempt: int, now: float, offered_key: str, pinned_key: str | None) -> bool:
        """Discovery answered with `offered_key`; `pinned_key` is the pin (None: first join).

        Returns True if the attempt goes on to join. A key that differs from
        the pin fails the attempt with ERR_CERT_NOT_TRUSTED: the caller must
        not connect to it. False also for a stale attempt.
        """
        if not self._current(attempt, S.DISCOVERING):
            return False
        if pinned_key is not None and offered_key != pinned_key:
            self.failed(attempt, now, Err.CERT_NOT_TRUSTED,
                        KEY_CHANGED_TEXT.format(pinned=pinned_key, offered=offered_key))
            return False
        self._move(E.DISCOVERED)
        return True

    def joined(self, attempt: int, now: float, member_id: int) -> bool:
        """The controller accepted the join. False (ignored) for a stale attempt."""
        if not self._current(attempt, S.JOINING):
            return False
        self._move(E.JOINED)
        self.num_connected += 1
        self.current_connected_time = now
        if self.num_connected == 1:
            self.first_connected_time = now
        self.member_id = member_id
        self.last_error, self.last_error_text = int(Err.NO_ERROR), ""
        self._log(f"joined the cluster controller (member id {member_id})")
        return True

    def failed(self, attempt: int, now: float, error: int, text: str) -> bool:
        """The current attempt failed with SoftEther error `error`. False if stale."""
        if not self._current(attempt, *_ATTEMPTING):
            return False
        self._move(E.FAILED)
        self.num_failed += 1
        self._set_error(error, text)
        self._log(f"cannot join the cluster controller: {text} (error {error}); "
                  f"retrying every {self.retry_interval_s:g} s", warning=True)
        self._actions.append(Disconnect(attempt))
        self._schedule_retry(now)
        return True

    def lost(self, now: float, error: int, text: str) -> bool:
        """The online link was lost. False (ignored) when not online."""
        if self.state is not S.ONLINE:
            return False
        self._move(E.LOST)
        self.current_connected_time = 0.0
        self._set_error(error, text)
        self._log(f"lost the cluster controller: {text}; established sessions keep running, "
                  f"rejoining", warning=True)
        self._actions.append(Disconnect(self.attempt))
        self._schedule_retry(now)
        return True

    def stop(self, now: float) -> None:
        """Member mode ended: abandon everything (idempotent)."""
        if self.state is S.STOPPED:
            return
        if self.state in (*_ATTEMPTING, S.ONLINE):
            self._actions.append(Disconnect(self.attempt))
        self._move(E.STOP)
        self._retry_at = None
        self.current_connected_time = 0.0

    def handle_timer(self, now: float) -> None:
        """Start a due retry, or fail an attempt past its deadline."""
        if self.state is S.RETRY_WAIT and self._retry_at is not None and now >= self._retry_at:
            self._move(E.RETRY_DUE)
            self._begin_attempt(now)
        elif self.state in _ATTEMPTING and now >= self._attempt_started + self.attempt_timeout_s:
            self.failed(self.attempt, now, Err.CONNECT_TO_FARM_CONTROLLER,
                        f"no answer within {self.attempt_timeout_s:g} s")

    # -- outputs ----------------------------------------------------------------

    def next_deadline(self) -> float | None:
        if self.state is S.RETRY_WAIT:
            return self._retry_at
        if self.state in _ATTEMPTING:
            return self._attempt_started + self.attempt_timeout_s
        return None

    def take_actions(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    def status(self) -> LinkStatus:
        online = self.state is S.ONLINE
        return LinkStatus(
            state=self.state, online=online,
            last_error=0 if online else self.last_error,
            last_error_text="" if online else self.last_error_text,
            started_time=self.started_time, first_connected_time=self.first_connected_time,
            current_connected_time=self.current_connected_time if online else 0.0,
            num_try=self.num_try, num_connected=self.num_connected, num_failed=self.num_failed,
            member_id=self.member_id if online else 0)

    # -- internals ----------------------------------------------------------------

    def _move(self, event: LinkEvent) -> None:
        target = TRANSITIONS.get((self.state, event))
        if target is None:
            raise IllegalTransition("member link", self.state, event)
        self.state = target

    def _current(self, attempt: int, *states: LinkState) -> bool:
        return attempt == self.attempt and self.state in states

    def _begin_attempt(self, now: float) -> None:
        self.attempt += 1
        self.num_try += 1
        self._attempt_started = now
        self._retry_at = None
        if self.state is S.DISCOVERING and self.num_connected == 0 and self.num_try == 1:
            self._log("connecting to the cluster controller")
        self._actions.append(Connect(self.attempt))

    def _schedule_retry(self, now: float) -> None:
        earliest = max(self._attempt_started + self.retry_interval_s, now)
        self._retry_at = earliest + self._rng.uniform(0.0, self.jitter_s)

    def _set_error(self, error: int, text: str) -> None:
        self.last_error, self.last_error_text = int(error), text

    def _log(self, text: str, warning: bool = False) -> None:
        # One line per change of (state, error): a controller refusing us every
        # 3 s for an hour logs once, not 1200 times.
        key = (self.state, self.last_error)
        if key != self._logged:
            self._logged = key
            self._actions.append(Log(text, warning))
