"""Domain errors of the cluster brain.

Every error the controller cores raise is one of these small classes. Each
docstring says who raises it and what the caller should do next. The admin
API (node/) maps them to SoftEther error numbers in one table; the numbers
suggested below are the ones SoftEther itself answers in the same situation.

Nothing here is a remote-input *parse* error: bad bus messages are rejected
by vpnbus/node before they reach these cores.
"""

from __future__ import annotations


class ControllerError(Exception):
    """Base class of every domain error in `controller`."""


class AuthFailed(ControllerError):
    """The join handshake failed: wrong admin password, a changed or swapped
    CURVE public key, a replayed or malformed proof.

    Raised by `joinauth.ControllerJoinAuth` / `joinauth.MemberJoinAuth`.
    The caller drops the join attempt (the controller answers ACCESS_DENIED,
    12, and forgets the half-joined member; the member counts a failed
    connection and retries later). Never retry with the same handshake object.
    """


class TicketError(ControllerError):
    """Base class of ticket login failures; all map to SoftEther AUTH_FAILED (9)."""


class TicketUnknown(TicketError):
    """No ticket with these 20 bytes exists for that hub (never issued, wrong
    hub, wrong length, or already purged).

    Raised by `tickets.TicketBook.redeem`. The member refuses the login with
    AUTH_FAILED; the client reconnects to the controller for a new redirect.
    """


class TicketExpired(TicketError):
    """The ticket was issued `lifetime_s` (60 s) or more ago.

    Raised by `tickets.TicketBook.redeem`. Same handling as TicketUnknown;
    a separate class so logs tell a slow client from a forged ticket.
    """


class TicketReused(TicketError):
    """The ticket was already used once (tickets are single use), or the same
    20 bytes were stored twice.

    Raised by `tickets.TicketBook.redeem` / `TicketBook.store`. Refuse the
    login with AUTH_FAILED and log it: a second use is a replay.
    """


class NoEligibleServer(ControllerError):
    """No server may take a new session: every member is evicted, suspect,
    draining or full, and the controller is full or "controller functions
    only".

    Raised by `selection` policies and `placement.Placement.place_session`.
    The controller refuses the login with COULD_NOT_HOST_HUB_ON_FARM (49);
    the `decision` attribute (a SelectionDecision) says why each candidate
    was skipped, for logs and vpnctl.
    """

    def __init__(self, message: str, decision: object = None) -> None:
        super().__init__(message)
        self.decision = decision


class HubTypeImmutable(ControllerError):
    """An attempt to change a hub between static and dynamic after creation
    (manual 3.9.10: the type cannot be changed).

    Raised by `placement.Placement.hub_created` when the hub exists with the
    other type. The admin API answers NOT_SUPPORTED and changes nothing.
    """


class HubUnknown(ControllerError):
    """A session or action names a hub the controller does not know.

    Raised by `placement.Placement.place_session` / `hub_deleted`. The admin
    API answers HUB_NOT_FOUND (8); a VPN login answers the same.
    """


class NotInThisMode(ControllerError):
    """A cluster operation was asked of a node in a mode that cannot do it
    (e.g. selecting a member on a standalone server, or taking a ticket on
    a controller).

    Raised by the node's mode dispatcher using these cores. The admin API
    answers NOT_FARM_CONTROLLER (46) or NOT_FARM_MEMBER (47) as fits.
    """


class MemberUnknown(ControllerError):
    """A registry call names a member id or key the registry does not hold.

    Raised by `registry.Registry`. The caller ignores the message that
    carried it (the member was forgotten meanwhile) and logs it.
    """


class InvalidReport(ControllerError):
    """A member's join information or status report is out of range (no
    host name, 0 or more than 128 public ports, a port outside 1..65535,
    negative counts, points above 100000).

    Raised by `registry.Registry.joined` / `status_reported`. For a join
    the controller refuses it (SoftEther ends such a join silently); for a
    status report it keeps the previous figures and logs the member.
    """


class IllegalTransition(ControllerError):
    """A state machine was given an event its current state does not accept.

    Raised by `member_life.transition`, `placement` (dynamic hub life) and
    the sans-IO handshake classes. Carries `state` and `event`. This is a
    bug in the caller or an out-of-order remote message: drop that member's
    link (it will rejoin with its whole state) rather than guess.
    """

    def __init__(self, machine: str, state: object, event: object) -> None:
        super().__init__(f"{machine}: event {_name(event)} is illegal in state {_name(state)}")
        self.machine = machine
        self.state = state
        self.event = event


def _name(value: object) -> str:
    return str(getattr(value, "name", value))
