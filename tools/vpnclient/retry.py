"""Reconnect schedule and the client's status record, sans-IO.

Backoff: after the n-th consecutive failed attempt (n = 1, 2, ...) the client
waits min(cap, base * 2**(n-1)) scaled by a jitter factor in [0.5, 1.0)
("equal jitter"), so many clients that lost the same member do not come
back in lock-step, and the wait is never below base/2 (no tight loop).
After `max_retries` consecutive failures the client gives up. A session
that reached the data plane resets the count, and when it is lost the
client tries again at once (within LOST_SPREAD_S, 50 ms): its member died
or was cut off, and the controller sends it to a live one. The defaults (base 0.5 s,
cap 4 s) bring a client back within a few seconds of a member's death;
SoftEther's client instead waits a fixed RetryInterval (>= 5 s in vpncmd).

Redirects inside one attempt are bounded too (`MAX_REDIRECTS`): SoftEther's
client follows redirects without limit, which loops for ever if two
controllers point at each other.

`ClientStatus` is the record the edge writes to `--status-file` (JSON) and
that drills read: where the client is connected, in what state, how often
it reconnected, with wall-clock timestamps supplied by the caller.
"""

from __future__ import annotations

import enum
import random
from dataclasses import asdict, dataclass, field
from typing import Callable

MAX_REDIRECTS = 4
DEFAULT_BASE_S = 0.5
DEFAULT_CAP_S = 4.0
DEFAULT_MAX_RETRIES = 10
LOST_SPREAD_S = 0.05


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long and how often to retry. ValueError for nonsense values."""

    max_retries: int = DEFAULT_MAX_RETRIES
    base_s: float = DEFAULT_BASE_S
    cap_s: float = DEFAULT_CAP_S

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not 0.01 <= self.base_s <= self.cap_s:
            raise ValueError("need 0.01 <= base_s <= cap_s")

    def delay_s(self, failures: int, r: float) -> float:
        """Wait after `failures` (>= 1) consecutive failures; r in [0, 1)."""
        raw = min(self.cap_s, self.base_s * 2 ** min(failures - 1, 30))
        return raw * (0.5 + 0.5 * r)


class Backoff:
    """Counts consecutive failures and hands out waits (None: give up)."""

    def __init__(self, policy: RetryPolicy, rand: Callable[[], float] = random.random) -> None:
        self.policy = policy
        self._rand = rand
        self.failures = 0

    def failed(self) -> float | None:
        """Record one failed attempt; the wait before the next, or None when
        max_retries consecutive failures were reached."""
        self.failures += 1
        if self.failures > self.policy.max_retries:
            return None
        return self.policy.delay_s(self.failures, self._rand())

    def lost(self) -> float:
        """An established session ended: start over at once (a member died;
        the controller redirects us to a live one), spread over at most
        LOST_SPREAD_S so the clients of one member do not arrive in one instant."""
        self.failures = 0
        return LOST_SPREAD_S * self._rand()

    def succeeded(self) -> None:
        self.failures = 0


class State(str, enum.Enum):
    STARTING = "starting"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    WAITING = "waiting"  # backing off before the next attempt
    STOPPED = "stopped"  # SIGTERM / stop()
    FAILED = "failed"  # gave up: fatal error or retries exhausted


@dataclass(slots=True)
class ClientStatus:
    """What `--status-file` holds. Times are Unix seconds (the caller's clock)."""

    configured_server: str
    hub: str
    user: str
    state: State = State.STARTING
    server: str | None = None  # where the data plane runs (a member after a redirect)
    redirected: bool = False
    session_name: str | None = None
    connection_name: str | None = None
    reconnects: int = 0  # sessions established after the first one
    sessions: int = 0
    failed_attempts: int = 0  # consecutive, reset by a session
    last_error: str | None = None
    last_error_code: int | None = None
    started_at: float | None = None
    connected_at: float | None = None
    disconnected_at: float | None = None
    updated_at: float | None = None
    frames_in: int = 0
    frames_out: int = 0
    bursts_out: int = 0  # frames_out / bursts_out = frames per block burst
    history: list[dict] = field(default_factory=list)

    HISTORY_MAX = 20

    def connecting(self, now: float) -> None:
        self.state = State.CONNECTING
        self.updated_at = now

    def connected(self, now: float, *, server: str, redirected: bool, session_name: str,
                  connection_name: str) -> None:
        if self.sessions:
            self.reconnects += 1
        self.sessions += 1
        self.failed_attempts = 0
        self.state = State.CONNECTED
        self.server, self.redirected = server, redirected
        self.session_name, self.connection_name = session_name, connection_name
        self.connected_at = self.updated_at = now
        self._remember(now, "connected", server=server, session=session_name)

    def disconnected(self, now: float, error: str, code: int | None) -> None:
        self.state = State.WAITING
        self.disconnected_at = self.updated_at = now
        self._error(error, code)
        self._remember(now, "lost", error=error)

    def attempt_failed(self, now: float, error: str, code: int | None, failures: int) -> None:
        self.state = State.WAITING
        self.failed_attempts = failures
        self.updated_at = now
        self._error(error, code)
        self._remember(now, "failed", error=error)

    def finished(self, now: float, state: State, error: str | None = None, code: int | None = None) -> None:
        self.state = state
        self.updated_at = now
        if state is not State.CONNECTED:
            self.server = self.session_name = self.connection_name = None
        if error is not None:
            self._error(error, code)

    def _error(self, error: str, code: int | None) -> None:
        self.last_error, self.last_error_code = error, code

    def _remember(self, now: float, event: str, **info: str | None) -> None:
        self.history.append({"at": now, "event": event, **info})
        del self.history[:-self.HISTORY_MAX]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["state"] = self.state.value
        return d
