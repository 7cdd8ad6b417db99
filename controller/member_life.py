"""Member life: the one transition table for a cluster member's state.

Theory of operation. A member whose CURVE key the controller has never
seen starts JOINING when its bus link opens; the join handshake
(`joinauth`) succeeding makes it ONLINE, failing or stalling makes it LEFT
(forgotten). ONLINE members take sessions. Missing heartbeats for
`suspect_after_s` (2 s by default, i.e. two 1 s heartbeats) makes it
SUSPECT: still hosting its hubs and sessions, but given no new sessions;
any message from it makes it ONLINE again. Silence for `liveness_timeout_s`
(3 s) makes it EVICTED: out of load balancing, its dynamic hubs counted as
gone (manual 3.9.6). Its bus connection closing (a killed process, a
restarted machine) does the same at once, as SoftEther removes a member
whose control connection closes; silence covers the deaths that close
nothing (a frozen process, a cut cable). An evicted member that opens its
link again is REJOINING until the handshake succeeds (ONLINE) or fails
(EVICTED again).
An operator may put an ONLINE or SUSPECT member into DRAINING: it keeps
its sessions and reports but gets no new ones, until undrained. An evicted
member not heard from for `forget_after_s` becomes LEFT and is removed.

Only this module changes a member's state, and only through `transition`;
an event a state does not accept raises IllegalTransition naming both.
The controller's own entry (Me) never goes through this table. The
past-tense events the registry emits for these changes are defined here too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from controller.errors import IllegalTransition


class MemberState(enum.Enum):
    JOINING = "joining"
    ONLINE = "online"
    SUSPECT = "suspect"
    DRAINING = "draining"
    EVICTED = "evicted"
    REJOINING = "rejoining"
    LEFT = "left"


class MemberEvent(enum.Enum):
    LINK_OPENED = "link opened"
    """The member started a join (first or again)."""
    AUTHENTICATED = "authenticated"
    """The join handshake succeeded."""
    AUTH_FAILED = "auth failed"
    """The join handshake failed."""
    HEARD = "heard"
    """A heartbeat or status report arrived."""
    SILENT = "silent"
    """No message for suspect_after_s."""
    TIMED_OUT = "timed out"
    """No message for liveness_timeout_s (or the join stalled that long)."""
    DISCONNECTED = "disconnected"
    """Its bus connection closed."""
    DRAIN = "drain"
    UNDRAIN = "undrain"
    FORGOTTEN = "forgotten"
    """Evicted for forget_after_s, or removed by the operator."""


S, E = MemberState, MemberEvent

TRANSITIONS: dict[tuple[MemberState, MemberEvent], MemberState] = {
    (S.JOINING, E.AUTHENTICATED): S.ONLINE,
    (S.JOINING, E.AUTH_FAILED): S.LEFT,
    (S.JOINING, E.TIMED_OUT): S.LEFT,
    (S.JOINING, E.DISCONNECTED): S.LEFT,
    (S.JOINING, E.HEARD): S.JOINING,
    (S.JOINING, E.LINK_OPENED): S.JOINING,
    (S.ONLINE, E.HEARD): S.ONLINE,
    (S.ONLINE, E.SILENT): S.SUSPECT,
    (S.ONLINE, E.TIMED_OUT): S.EVICTED,
    (S.ONLINE, E.DISCONNECTED): S.EVICTED,
    (S.ONLINE, E.DRAIN): S.DRAINING,
    # A member whose link reopens while we still think it online restarted
    # quickly: treat it as a rejoin so it re-authenticates.
    (S.ONLINE, E.LINK_OPENED): S.REJOINING,
    (S.SUSPECT, E.HEARD): S.ONLINE,
    (S.SUSPECT, E.SILENT): S.SUSPECT,
    (S.SUSPECT, E.TIMED_OUT): S.EVICTED,
    (S.SUSPECT, E.DISCONNECTED): S.EVICTED,
    (S.SUSPECT, E.DRAIN): S.DRAINING,
    (S.SUSPECT, E.LINK_OPENED): S.REJOINING,
    (S.DRAINING, E.HEARD): S.DRAINING,
    (S.DRAINING, E.SILENT): S.DRAINING,
    (S.DRAINING, E.UNDRAIN): S.ONLINE,
    (S.DRAINING, E.TIMED_OUT): S.EVICTED,
    (S.DRAINING, E.DISCONNECTED): S.EVICTED,
    (S.DRAINING, E.LINK_OPENED): S.REJOINING,
    (S.EVICTED, E.LINK_OPENED): S.REJOINING,
    (S.EVICTED, E.FORGOTTEN): S.LEFT,
    (S.REJOINING, E.AUTHENTICATED): S.ONLINE,
    (S.REJOINING, E.AUTH_FAILED): S.EVICTED,
    (S.REJOINING, E.TIMED_OUT): S.EVICTED,
    (S.REJOINING, E.DISCONNECTED): S.EVICTED,
    (S.REJOINING, E.HEARD): S.REJOINING,
    (S.REJOINING, E.LINK_OPENED): S.REJOINING,
}

# States whose member may be given new sessions.
TAKES_SESSIONS = frozenset({S.ONLINE})
# States in which the member still hosts hub instances and sessions.
HOSTS_HUBS = frozenset({S.ONLINE, S.SUSPECT, S.DRAINING})
# States in the member list while not silent for the liveness timeout: a suspect
# member is still listed until its time is up; a draining one (it said Leave) is not.
LISTED = frozenset({S.ONLINE, S.SUSPECT})
# States in which silence is watched (the liveness clock runs).
WATCHED = frozenset({S.JOINING, S.ONLINE, S.SUSPECT, S.DRAINING, S.REJOINING})


# ----- events the registry emits (past tense; pulled with Registry.events) -----

@dataclass(frozen=True, slots=True)
class MemberJoined:
    """A new member passed the join handshake and is ONLINE."""

    member_id: int
    hostname: str


@dataclass(frozen=True, slots=True)
class MemberRejoined:
    """A known member (same CURVE key, same id) joined again and is ONLINE."""

    member_id: int
    hostname: str


@dataclass(frozen=True, slots=True)
class MemberJoinFailed:
    """A join handshake failed (AuthFailed or bad join info)."""

    member_id: int


@dataclass(frozen=True, slots=True)
class MemberSuspected:
    """A member has been silent for suspect_after_s: no new sessions."""

    member_id: int
    silent_for_s: float


@dataclass(frozen=True, slots=True)
class MemberRecovered:
    """A suspect member was heard again."""

    member_id: int


@dataclass(frozen=True, slots=True)
class MemberEvicted:
    """A member was silent for liveness_timeout_s, or its bus connection
    closed, and is out of the cluster."""

    member_id: int
    silent_for_s: float
    hubs: tuple[str, ...]
    """Hub instances it hosted, now gone from the cluster view."""
    disconnected: bool = False
    """Its connection closed (else: silent for the liveness timeout)."""


@dataclass(frozen=True, slots=True)
class MemberDrained:
    """The operator stopped new sessions to a member."""

    member_id: int


@dataclass(frozen=True, slots=True)
class MemberUndrained:
    """The operator let a drained member take sessions again."""

    member_id: int


@dataclass(frozen=True, slots=True)
class MemberLeft:
    """A member's entry was removed (join never completed, or forgotten)."""

    member_id: int


RegistryEvent = (
    MemberJoined | MemberRejoined | MemberJoinFailed | MemberSuspected | MemberRecovered
    | MemberEvicted | MemberDrained | MemberUndrained | MemberLeft
)


def transition(state: MemberState, event: MemberEvent) -> MemberState:
    """Return the state after `event`; raise IllegalTransition if `state` does not accept it."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition("member life", state, event) from None
