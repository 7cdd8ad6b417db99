"""Tickets: the one-time pass that carries a login from controller to member.

Flow (softether-protocol.md §5): the controller authenticates the user,
draws a 20-byte random ticket (`new_ticket`), asks the chosen member to
store it with the login's identity (`TicketGrant`: hub, user name, real
user name, group, session name, policy) and only after the member has
acknowledged does it redirect the client. The client logs in at the member
with authtype 99 and the ticket; the member `redeem`s it, which hands back
the grant (the member then names the session and applies the policy from
it) and uses the ticket up. SoftEther does the same in `SiCallCreateTicket`
/ `SiCalledCreateTicket` (store) and `SiCheckTicket` (redeem).

Numbers: 20 bytes (SHA1_SIZE) from an injectable random source
(`os.urandom` by default); lifetime 60 s (`TICKET_EXPIRES`). SoftEther only
purges old tickets when a new one is stored and never checks the age on
use; we enforce it strictly: a ticket `lifetime_s` or more old is expired.

Invariants: a ticket is redeemable at most once, only for the hub it was
stored for, and only within its lifetime. A used ticket is remembered
until its lifetime ends so a second use is reported as a replay
(TicketReused) rather than as unknown; after that it is forgotten and the
book's size stays bounded by the tickets of the last 60 s.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from controller.errors import TicketExpired, TicketReused, TicketUnknown
from controller.registry import hub_key
from controller.selection import TICKET_LIFETIME_S

TICKET_SIZE = 20

PolicyValue = bool | int | str


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketGrant:
    """Who the ticket lets in, and how (SoftEther `createticket` fields)."""

    hub: str
    user_name: str
    """Login name the client gave."""
    real_user_name: str
    """Name of the user object that authenticated it (may be "*")."""
    group: str = ""
    session_name: str = ""
    """Name the member gives the session, e.g. SID-ALICE-3."""
    policy: Mapping[str, PolicyValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Freeze the policy so a stored grant cannot change under the book.
        object.__setattr__(self, "policy", MappingProxyType(dict(self.policy)))


def new_ticket(random_bytes: Callable[[int], bytes] = os.urandom) -> bytes:
    """Draw a fresh 20-byte ticket from `random_bytes`."""
    ticket = random_bytes(TICKET_SIZE)
    if len(ticket) != TICKET_SIZE:
        raise ValueError(f"random source gave {len(ticket)} bytes, need {TICKET_SIZE}")
    return ticket


@dataclass(slots=True)
class _Entry:
    grant: TicketGrant
    stored_at: float
    used: bool = False


class TicketBook:
    """Tickets a member holds (or the controller, for logins it keeps itself).

    `now` is monotonic seconds, passed in.
    """

    def __init__(self, lifetime_s: float = TICKET_LIFETIME_S) -> None:
        self.lifetime_s = lifetime_s
        self._entries: dict[bytes, _Entry] = {}

    def store(self, ticket: bytes, grant: TicketGrant, now: float) -> None:
        """Keep `ticket` for one login to `grant.hub`.

        Raises TicketReused if these 20 bytes are already in the book,
        ValueError if the ticket is not 20 bytes.
        """
        self.handle_timer(now)
        if len(ticket) != TICKET_SIZE:
            raise ValueError(f"ticket of {len(ticket)} bytes, need {TICKET_SIZE}")
        if ticket in self._entries:
            raise TicketReused("ticket already stored")
        self._entries[bytes(ticket)] = _Entry(grant=grant, stored_at=now)

    def redeem(self, ticket: bytes, hub: str, now: float) -> TicketGrant:
        """Use `ticket` for a login to `hub`; return its grant.

        Raises TicketUnknown (no such ticket for that hub, wrong length),
        TicketExpired (lifetime_s or more old) or TicketReused (used before).
        """
        entry = self._entries.get(bytes(ticket)) if len(ticket) == TICKET_SIZE else None
        if entry is None or hub_key(entry.grant.hub) != hub_key(hub):
            raise TicketUnknown(f"no ticket for hub {hub!r}")
        if now >= entry.stored_at + self.lifetime_s:
            del self._entries[bytes(ticket)]
            raise TicketExpired(f"ticket for hub {hub!r} is {now - entry.stored_at:.1f} s old")
        if entry.used:
            raise TicketReused(f"ticket for hub {hub!r} was already used")
        entry.used = True
        return entry.grant

    def outstanding(self, now: float) -> int:
        """Tickets stored, unused and not expired: logins about to arrive.

        A member adds this to the load it reports (see `selection.FreshLoad`).
        """
        return sum(1 for e in self._entries.values() if not e.used and now < e.stored_at + self.lifetime_s)

    def handle_timer(self, now: float) -> None:
        """Forget every ticket whose lifetime has ended."""
        for ticket, entry in list(self._entries.items()):
            if now >= entry.stored_at + self.lifetime_s:
                del self._entries[ticket]

    def next_deadline(self) -> float | None:
        if not self._entries:
            return None
        return min(e.stored_at for e in self._entries.values()) + self.lifetime_s

    def __len__(self) -> int:
        return len(self._entries)
