"""Did the clients the controller redirected reach their member?

A member can be healthy on the cluster link (it answers polls, stores
tickets) while clients cannot reach its public endpoint: a firewall rule,
a cut uplink, a wrong public address. SoftEther keeps redirecting clients
there and they loop between the controller and the dead address. Two
signals tell the controller, both without any message of their own:

- A client comes back. A login from the same client (address, SoftEther's
  machine `unique_id`, user name) within RETURN_WINDOW_S of its redirect
  to member M means its session on M ended or never began. Sending it to M
  again is the loop; for a static hub it is sent elsewhere if any other
  server may take it (`came_back_from`). A dynamic hub is not split for
  one client: its host is judged by the second signal. Clients that send
  no unique_id (it is optional) are not remembered: many clients behind
  one address with one user name would otherwise push each other away.
- Tickets stay unredeemed. A member reports how many tickets it holds
  unredeemed (StatusReport.tickets_outstanding). If that stays above zero
  for UNREDEEMED_TICKET_S while the controller keeps sending clients there,
  the clients are not arriving: the controller checks the member's
  endpoint again (`suspects`). A failed check takes the member out of load
  balancing until a recheck passes (controller/core.py). One client that
  took a redirect and vanished triggers at most one check, because a check
  is asked only if a client was sent there since the previous one.

Both tables are bounded (MAX_CLIENTS, one entry per member).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

RETURN_WINDOW_S: Final = 30.0
UNREDEEMED_TICKET_S: Final = 2.0
MAX_CLIENTS: Final = 65536


@dataclass(frozen=True, slots=True)
class ClientKey:
    """Who a client is across its reconnects, as far as a login says."""

    address: str
    unique_id: bytes
    user_name: str


def client_key(address: str, unique_id: bytes, user_name: str) -> ClientKey | None:
    """The key of a login, None when it cannot tell clients apart."""
    if not address or not unique_id:
        return None
    return ClientKey(address, unique_id, user_name.lower())


@dataclass(slots=True)
class _Waiting:
    since: float
    """Tickets outstanding in every status report since then."""
    sent_since_check: bool
    """A client was redirected here since the last check."""


class Arrivals:
    """Redirects and what became of them; `now` is monotonic seconds."""

    def __init__(self, *, return_window_s: float = RETURN_WINDOW_S,
                 unredeemed_s: float = UNREDEEMED_TICKET_S, max_clients: int = MAX_CLIENTS) -> None:
        self.return_window_s = return_window_s
        self.unredeemed_s = unredeemed_s
        self.max_clients = max_clients
        self._sent: OrderedDict[ClientKey, tuple[int, float]] = OrderedDict()
        self._waiting: dict[int, _Waiting] = {}

    def redirected(self, key: ClientKey | None, member_id: int, now: float) -> None:
        """A client was redirected to `member_id` (its ticket was stored)."""
        waiting = self._waiting.get(member_id)
        if waiting is not None:
            waiting.sent_since_check = True
        if key is None:
            return
        self._sent.pop(key, None)
        self._sent[key] = (member_id, now)
        while len(self._sent) > self.max_clients:
            self._sent.popitem(last=False)

    def came_back_from(self, key: ClientKey | None, now: float) -> int | None:
        """The member this client was redirected to within the window, if any."""
        if key is None:
            return None
        sent = self._sent.get(key)
        if sent is None:
            return None
        member_id, at = sent
        if now - at > self.return_window_s:
            del self._sent[key]
            return None
        return member_id

    def tickets_reported(self, member_id: int, outstanding: int, now: float) -> bool:
        """A status report's count of unredeemed tickets. True when the
        member's endpoint should be checked again (see the module docstring)."""
        if outstanding <= 0:
            self._waiting.pop(member_id, None)
            return False
        waiting = self._waiting.setdefault(member_id, _Waiting(since=now, sent_since_check=True))
        if not waiting.sent_since_check or now - waiting.since < self.unredeemed_s:
            return False
        waiting.since, waiting.sent_since_check = now, False
        return True

    def forget_member(self, member_id: int) -> None:
        """The member left or was evicted: its clients may go anywhere again."""
        self._waiting.pop(member_id, None)
        for key in [k for k, (m, _) in self._sent.items() if m == member_id]:
            del self._sent[key]
