"""Per-source-address backoff after failed logins, and their log summary.

One policy for every password check a stranger can reach: the admin API
(node/admin/api.py), the VPN login (node/dataplane/vpn_handler.py) and the
cluster join (controller/core.py). SoftEther limits none of them; a probe made
1,397 admin guesses a second from one client, each logging a line.

Policy (numbers are the defaults):
- the first `free_failures` (5) failures from an address cost nothing, so a
  person mistyping is never slowed down;
- after that the address must wait before its next attempt: 1 s, doubling
  per failure up to `max_delay_s` (30 s). An attempt during the wait is
  refused without looking at the password (the edge answers as for a wrong
  one) and does not lengthen the wait;
- a success clears the address; `forget_after_s` (10 min) after its last
  failure an address is forgotten; at most `max_addresses` (4096) are kept,
  the least recently failed dropped first (bounded memory);
- the key is the address (an IPv6 address by its /64: one host gets a whole
  /64 for free). Only the failing address waits: an attacker elsewhere
  cannot lock the real administrator out.

Logging: the first failure of an address is logged at once; later ones are
counted and logged as one summary line ("N more failures") at the first
failure at least `log_interval_s` (60 s) after the address's last line; and
at most `max_log_lines` (20) lines per interval in all (a botnet has many
addresses), the rest counted into the next line.

Sans-IO: `now` (monotonic seconds) is a parameter; no clock, no I/O.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Protocol

FREE_FAILURES = 5
FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
FORGET_AFTER_S = 600.0
MAX_ADDRESSES = 4096
LOG_INTERVAL_S = 60.0
MAX_LOG_LINES = 20


def address_key(address: str) -> str:
    """The key an address is counted under: an IPv4 address itself, an IPv6
    address by its /64 (IPv4-mapped ones as IPv4); anything else as given."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


class Logged(Protocol):
    """What LogThrottle keeps per key: when its last line was logged, and
    how many of its events were not logged since."""

    logged_at: float | None
    unlogged: int


class LogThrottle:
    """Refusals logged in summary: one line per key per `interval_s`, and
    at most `max_lines` lines per interval in all (keys are free to make:
    CURVE keys, addresses of a botnet). Also the join desk's
    (controller/join_desk.py)."""

    def __init__(self, interval_s: float = LOG_INTERVAL_S, max_lines: int = MAX_LOG_LINES) -> None:
        self.interval_s = interval_s
        self.max_lines = max_lines
        self._lines: deque[float] = deque()   # when the recent lines were logged
        self._over_budget = 0

    def decide(self, record: Logged, now: float) -> int | None:
        """An event of `record`'s key: None = do not log it (counted); else
        log it now, mentioning the returned number of events not logged
        before it (of this key since its last line, and of any key over the
        line budget)."""
        if record.logged_at is not None and now - record.logged_at < self.interval_s:
            record.unlogged += 1
            return None
        while self._lines and now - self._lines[0] >= self.interval_s:
            self._lines.popleft()
        if len(self._lines) >= self.max_lines:
            self._over_budget += 1
            return None
        self._lines.append(now)
        skipped = record.unlogged + self._over_budget
        record.unlogged, record.logged_at, self._over_budget = 0, now, 0
        return skipped


@dataclass(slots=True)
class _Address:
    failures: int = 0
    last_failed_at: float = 0.0
    blocked_until: float = 0.0
    logged_at: float | None = None
    unlogged: int = 0


@dataclass(frozen=True, slots=True)
class LogLine:
    """Log this failure now; `unlogged` earlier failures (of this address
    since its last line, and of any address over the line budget) were not."""

    unlogged: int

    def suffix(self) -> str:
        """Text to append to the log line ("" when nothing was left out)."""
        return f" ({self.unlogged} more failed attempts not logged)" if self.unlogged else ""


class AuthBackoff:
    """Failed-login memory of one password check (one instance per path)."""

    def __init__(self, *, free_failures: int = FREE_FAILURES, first_delay_s: float = FIRST_DELAY_S,
                 max_delay_s: float = MAX_DELAY_S, forget_after_s: float = FORGET_AFTER_S,
                 max_addresses: int = MAX_ADDRESSES, log_interval_s: float = LOG_INTERVAL_S,
                 max_log_lines: int = MAX_LOG_LINES) -> None:
        self.free_failures = free_failures
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.forget_after_s = forget_after_s
        self.max_addresses = max_addresses
        self._log = LogThrottle(log_interval_s, max_log_lines)
        self._addresses: OrderedDict[str, _Address] = OrderedDict()   # least recently failed first
        self.refused = 0
        """Attempts refused during a wait (never checked)."""

    def wait(self, address: str, now: float) -> float:
        """Seconds `address` must still wait before its next attempt is
        checked (0: check it now). A positive answer counts as a refusal."""
        self._expire(now)
        found = self._addresses.get(address_key(address))
        if found is None or now >= found.blocked_until:
            return 0.0
        self.refused += 1
        found.unlogged += 1
        return found.blocked_until - now

    def failed(self, address: str, now: float) -> LogLine | None:
        """A checked attempt from `address` failed. Returns what to log now,
        or None: it is counted into a later summary line."""
        self._expire(now)
        key = address_key(address)
        found = self._addresses.pop(key, None) or _Address()
        self._addresses[key] = found   # most recently failed last
        while len(self._addresses) > self.max_addresses:
            self._addresses.popitem(last=False)
        found.failures += 1
        found.last_failed_at = now
        over = found.failures - self.free_failures
        if over > 0:
            found.blocked_until = now + min(self.first_delay_s * 2 ** min(over - 1, 30), self.max_delay_s)
        skipped = self._log.decide(found, now)
        return None if skipped is None else LogLine(skipped)

    def succeeded(self, address: str) -> None:
        self._addresses.pop(address_key(address), None)

    def failures(self, address: str) -> int:
        """Failures remembered for `address` (0 once cleared or forgotten)."""
        found = self._addresses.get(address_key(address))
        return 0 if found is None else found.failures

    def _expire(self, now: float) -> None:
        while self._addresses:
            key, oldest = next(iter(self._addresses.items()))
            if now - oldest.last_failed_at < self.forget_after_s:
                break
            del self._addresses[key]
