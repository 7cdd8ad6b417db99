"""What ControllerCore is fed and what it asks of its driver, as records.

The driver (node/cluster/controller_role.py in the daemon, the in-memory
simulation in the tests) feeds the core a `ClusterConfig` and `LoginRequest`s
among its other inputs, and carries out every `Action` the core queues, in
order, after the reply to the input that queued it. `LoginPlaced` carries the
decision on a login (`KeepLocal`, `RedirectTo`, `LoginFailed`).
"""

from __future__ import annotations

from dataclasses import dataclass

from controller import messages as msg
from controller.drain import DrainOrder
from controller.errors import ControllerError
from controller.registry import RegistryEvent


# -- what the caller must do (pulled with take_actions) -------------------------

@dataclass(frozen=True, slots=True)
class Send:
    """Send a one-way message to `peer` (best effort: a lost one is harmless)."""

    peer: bytes
    message: object


@dataclass(frozen=True, slots=True)
class Request:
    """Send request `message` to `peer` and report its outcome with `token`:
    reply_received, or request_failed (timeout, refusal, unreachable)."""

    token: int
    peer: bytes
    message: object
    timeout_s: float


@dataclass(frozen=True, slots=True)
class Forget:
    """Stop watching `peer` on the bus (after replies already queued are sent)."""

    peer: bytes


@dataclass(frozen=True, slots=True)
class SetLocalInstance:
    """Start (`running`) or stop this node's instance of dynamic hub `hub`."""

    hub: str
    running: bool


@dataclass(frozen=True, slots=True)
class PollLocal:
    """Report this node's own load now with `local_status`."""


@dataclass(frozen=True, slots=True)
class ClusterEvent:
    """A member's life changed (joined, evicted, ...): for observers; nothing to do."""

    event: RegistryEvent


@dataclass(frozen=True, slots=True)
class Log:
    """One line for the operator; `level` is a logging level."""

    level: int
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginRequest:
    """A VPN login the controller authenticated and must now place."""

    hub: str
    user_name: str
    """The login name the client gave."""
    real_user_name: str
    """The user object that authenticated it (may be "*")."""
    group: str = ""
    admin: bool = False
    """A hub administrator login: stays on the controller for a static hub."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeepLocal:
    """The controller takes the session itself."""

    session_name: str
    """SID-<USER>-<n>, from the same per-hub counter as redirected sessions (unique in the cluster)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RedirectTo:
    """The chosen member stored `ticket`: send the client SoftEther's redirect."""

    member_id: int
    ip: str
    """The member's public IPv4 address."""
    ports: tuple[int, ...]
    ticket: bytes
    cert: bytes
    """The member's TLS certificate, DER (the client pins it)."""
    session_name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginFailed:
    """No server could take the login; `error` maps to SoftEther's number."""

    error: ControllerError


LoginOutcome = KeepLocal | RedirectTo | LoginFailed


@dataclass(frozen=True, slots=True)
class LoginPlaced:
    """Login `login_id` (from place_login) is decided."""

    login_id: int
    outcome: LoginOutcome


@dataclass(frozen=True, slots=True)
class CheckEndpoint:
    """Check that clients redirected to member `member_id` reach it: open TLS
    to `ip` on its public `ports` (the caller chooses which, and says why) and
    compare the certificate there with `cert` (DER). Report with
    `endpoint_checked`. A newer CheckEndpoint for the same member supersedes
    one still running: cancel that one, report only the newest."""

    member_id: int
    ip: str
    ports: tuple[int, ...]
    cert: bytes


Action = Send | Request | Forget | SetLocalInstance | PollLocal | LoginPlaced | CheckEndpoint | ClusterEvent | Log


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
    """What the core needs of the controller's configuration."""

    serial: int
    """The config serial, sent with every push (members ignore older ones)."""
    password_hash: bytes
    """SHA-0 of the admin password: what members prove they know."""
    controller_only: bool
    """"Controller functions only": the controller takes no sessions."""
    hubs: tuple[msg.HubConfig, ...]
    """Every cluster hub (static or dynamic), whole, as pushed to members."""
    drains: tuple[DrainOrder, ...] = ()
    """Members the operator drains (controller/drain.py)."""
