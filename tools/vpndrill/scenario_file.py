"""Scenario files: a cluster to build, clients to connect, a timeline of faults.

    name = "member crash"
    liveness_s = 2.0          # the controller's member liveness timeout
    duration_s = 60           # the drill never runs longer
    [controller]
    weight = 100
    only = false              # "controller functions only": no sessions on it
    [[member]]
    name = "member1"
    weight = 100
    [[hub]]
    name = "OFFICE"
    type = "static"           # or "dynamic"
    users = { alice = "alice-secret" }
    lan = false               # --netns: a LAN host 10.99.0.254 behind a local bridge on every server
    [[clients]]
    count = 12
    hub = "OFFICE"
    user = "alice"
    ping = "peer"             # optional: clients ping each other in pairs, or "lan"
    tap = false               # TAP clients (vpnclient --tap processes; --netns only)
    [[step]]
    after = "settled"         # or at = SECONDS since the start
    delay = 1.0               # then wait this long
    action = "kill"
    target = "member2"        # a server name, "busiest" (most sessions now) or "last" (the last fault's)
    [chaos]                   # optional: random faults on members, after the steps
    duration_s = 300
    seed = 1

Conditions (`after`): "settled" (every client connected and every running
member listed), "detected" (the previous fault's target is out of the member
list), "evicted" (no session left on it). Actions: kill, stop, cont,
restart, start, drain, undrain, link_down, link_up, partition, heal.

`load(path)` returns a typed `Scenario` or raises `ScenarioError` naming the
file and line: tomllib's own message carries it for syntax errors, and a
key -> line map of the file (`key_lines`) gives it for every other error.
Sans-IO apart from reading the file; `chaos_steps` expands a chaos table
into steps with its own seeded random generator.
"""

from __future__ import annotations

import random
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACTIONS = ("kill", "stop", "cont", "restart", "start", "drain", "undrain", "link_down", "link_up",
           "partition", "heal")
NEEDS_NETNS = frozenset({"link_down", "link_up", "partition", "heal"})
CONDITIONS = ("settled", "detected", "evicted")
RECOVERY = {"kill": "start", "stop": "cont", "link_down": "link_up", "partition": "heal", "drain": "undrain"}
MAX_MEMBERS = 16
MAX_CLIENTS = 500
MAX_TAP_CLIENTS = 60
MAX_STEPS = 1000
MAX_DURATION_S = 3600.0
DEFAULT_STEP_TIMEOUT_S = 60.0

LineKey = tuple[str, int | None, str | None]


class ScenarioError(Exception):
    """The scenario file is wrong; str() is the one line the operator sees."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")
        self.line = line


@dataclass(frozen=True, slots=True)
class MemberSpec:
    name: str
    weight: int


@dataclass(frozen=True, slots=True)
class HubSpec:
    name: str
    dynamic: bool
    users: dict[str, str]
    lan: bool = False
    """A LAN with a host (--netns) behind a local bridge of this hub on every server."""


@dataclass(frozen=True, slots=True)
class ClientsSpec:
    count: int
    hub: str
    user: str
    password: str
    ping: str
    """"" (none), "peer" (each other in pairs) or "lan" (the host behind the hub's local bridges)."""
    tap: bool = False
    """`vpnclient --tap` processes in their own namespaces (--netns) instead of userspace sessions."""


@dataclass(frozen=True, slots=True)
class Step:
    action: str
    target: str
    at: float | None
    """Seconds since the drill began; None: `after` a condition."""
    after: str | None
    delay: float
    timeout_s: float
    line: int | None


@dataclass(frozen=True, slots=True)
class Chaos:
    duration_s: float
    seed: int
    faults: tuple[str, ...]
    every_s: tuple[float, float]
    """A fault every uniform(lo, hi) seconds."""
    hold_s: tuple[float, float]
    """Each fault lasts uniform(lo, hi) seconds, then its recovery."""


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    liveness_s: float
    duration_s: float
    controller_weight: int
    controller_only: bool
    members: tuple[MemberSpec, ...]
    hubs: tuple[HubSpec, ...]
    clients: tuple[ClientsSpec, ...]
    steps: tuple[Step, ...]
    chaos: Chaos | None

    @property
    def servers(self) -> list[str]:
        return ["controller", *(m.name for m in self.members)]

    @property
    def client_count(self) -> int:
        return sum(c.count for c in self.clients)


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"-]+)\s*\]\]?")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\"-]+)\s*=")


def key_lines(text: str) -> dict[LineKey, int]:
    """(table, index in its array or None, key or None for the header) -> line number."""
    lines: dict[LineKey, int] = {}
    table, index = "", None
    counts: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        header = _HEADER.match(raw)
        if header:
            table = header.group(2).strip('"')
            if header.group(1) == "[[":
                index = counts.get(table, 0)
                counts[table] = index + 1
            else:
                index = None
            lines.setdefault((table, index, None), number)
            continue
        key = _KEY.match(raw)
        if key:
            lines.setdefault((table, index, key.group(1).strip('"')), number)
    return lines


class _Reader:
    """Typed access to the parsed document; every error names its line."""

    def __init__(self, path: str, lines: dict[LineKey, int]) -> None:
        self.path, self.lines = path, lines

    def error(self, where: LineKey, message: str) -> ScenarioError:
        table, index, key = where
        line = self.lines.get(where) or self.lines.get((table, index, None))
        name = f"{table}.{key}" if table and key else (key or table)
        return ScenarioError(self.path, line, f"{name}: {message}" if name else message)

    def get(self, doc: dict[str, Any], where: LineKey, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        key = where[2]
        assert key is not None
        if key not in doc:
            if default is ...:
                raise self.error((where[0], where[1], None), f"{key} is missing")
            return default
        value = doc[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.error(where, f"must be {names}, not {type(value).__name__} {value!r}")
        return value

    def number(self, doc: dict[str, Any], where: LineKey, lo: float, hi: float, default: Any = ...) -> float:
        value = self.get(doc, where, (int, float), default)
        if not lo <= value <= hi:
            raise self.error(where, f"{value} is not within {lo:g}..{hi:g}")
        return float(value)

    def integer(self, doc: dict[str, Any], where: LineKey, lo: int, hi: int, default: Any = ...) -> int:
        value = self.get(doc, where, int, default)
        if not lo <= value <= hi:
            raise self.error(where, f"{value} is not within {lo}..{hi}")
        return int(value)

    def only_keys(self, doc: dict[str, Any], table: str, index: int | None, allowed: set[str]) -> None:
        for key in doc:
            if key not in allowed:
                raise self.error((table, index, key), f"unknown key (expected one of {', '.join(sorted(allowed))})")

    def tables(self, doc: dict[str, Any], name: str) -> list[dict[str, Any]]:
        value = doc.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(("", None, name), f"must be written [[{name}]]")
        return value


def load(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(str(path), None, f"cannot read: {exc.strerror or exc}") from None
    return parse(text, str(path))


def parse(text: str, path: str = "<scenario>") -> Scenario:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(match.group(1)) if match else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        col = f" (column {match.group(2)})" if match else ""
        raise ScenarioError(path, line, f"not valid TOML: {message}{col}") from None
    r = _Reader(path, key_lines(text))
    r.only_keys(doc, "", None, {"name", "liveness_s", "duration_s", "controller", "member", "hub", "clients",
                                "step", "chaos"})
    ctl = doc.get("controller", {})
    if not isinstance(ctl, dict):
        raise r.error(("", None, "controller"), "must be a table [controller]")
    r.only_keys(ctl, "controller", None, {"weight", "only"})
    members: list[MemberSpec] = []
    for i, m in enumerate(r.tables(doc, "member")):
        r.only_keys(m, "member", i, {"name", "weight"})
        name = r.get(m, ("member", i, "name"), str, f"member{i + 1}")
        if name in ("controller", "busiest", "last") or any(x.name == name for x in members):
            raise r.error(("member", i, "name"), f"{name!r} is taken")
        members.append(MemberSpec(name, r.integer(m, ("member", i, "weight"), 1, 10000, 100)))
    if not 1 <= len(members) <= MAX_MEMBERS:
        raise r.error(("", None, None), f"a scenario needs 1..{MAX_MEMBERS} [[member]] tables, not {len(members)}")
    hubs = []
    for i, h in enumerate(r.tables(doc, "hub")):
        r.only_keys(h, "hub", i, {"name", "type", "users", "lan"})
        kind = r.get(h, ("hub", i, "type"), str, "static")
        if kind not in ("static", "dynamic"):
            raise r.error(("hub", i, "type"), f"{kind!r} is neither \"static\" nor \"dynamic\"")
        users = r.get(h, ("hub", i, "users"), dict, {})
        if not all(isinstance(v, str) for v in users.values()):
            raise r.error(("hub", i, "users"), "must map user names to password strings")
        lan = r.get(h, ("hub", i, "lan"), bool, False)
        if lan and kind == "dynamic":
            raise r.error(("hub", i, "lan"), "a LAN is bridged to a static hub (a dynamic one moves)")
        hubs.append(HubSpec(r.get(h, ("hub", i, "name"), str), kind == "dynamic", dict(users), lan))
    clients = []
    for i, c in enumerate(r.tables(doc, "clients")):
        r.only_keys(c, "clients", i, {"count", "hub", "user", "password", "ping", "tap"})
        hub_name = r.get(c, ("clients", i, "hub"), str)
        hub = next((h for h in hubs if h.name == hub_name), None)
        if hub is None:
            raise r.error(("clients", i, "hub"), f"no [[hub]] named {hub_name!r}")
        user = r.get(c, ("clients", i, "user"), str)
        if user not in hub.users and "password" not in c:
            raise r.error(("clients", i, "user"), f"hub {hub_name!r} has no user {user!r}")
        ping = r.get(c, ("clients", i, "ping"), str, "")
        if ping not in ("", "peer", "lan"):
            raise r.error(("clients", i, "ping"), f"{ping!r}: the targets are \"peer\" and \"lan\"")
        if ping == "lan" and not hub.lan:
            raise r.error(("clients", i, "ping"), f"hub {hub_name!r} has no LAN (lan = true)")
        tap = r.get(c, ("clients", i, "tap"), bool, False)
        count = r.integer(c, ("clients", i, "count"), 1, MAX_CLIENTS)
        if tap and count > MAX_TAP_CLIENTS:
            raise r.error(("clients", i, "count"), f"at most {MAX_TAP_CLIENTS} TAP clients (each a process)")
        clients.append(ClientsSpec(count, hub_name, user, r.get(c, ("clients", i, "password"), str,
                                                                 hub.users.get(user, "")), ping, tap))
    if sum(c.count for c in clients) > MAX_CLIENTS:
        raise r.error(("clients", 0, None), f"more than {MAX_CLIENTS} clients in all")
    servers = {"controller", "busiest", "last", *(m.name for m in members)}
    steps = []
    raw_steps = r.tables(doc, "step")
    if len(raw_steps) > MAX_STEPS:
        raise r.error(("step", MAX_STEPS, None), f"more than {MAX_STEPS} steps")
    for i, s in enumerate(raw_steps):
        r.only_keys(s, "step", i, {"at", "after", "delay", "action", "target", "timeout_s"})
        action = r.get(s, ("step", i, "action"), str)
        if action not in ACTIONS:
            raise r.error(("step", i, "action"), f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
        target = r.get(s, ("step", i, "target"), str)
        if target not in servers:
            raise r.error(("step", i, "target"), f"no server named {target!r} (one of {', '.join(sorted(servers))})")
        if ("at" in s) == ("after" in s):
            raise r.error(("step", i, None), "a step needs exactly one of at = SECONDS or after = CONDITION")
        after = r.get(s, ("step", i, "after"), str, None)
        if after is not None and after not in CONDITIONS:
            raise r.error(("step", i, "after"), f"unknown condition {after!r} (one of {', '.join(CONDITIONS)})")
        steps.append(Step(action, target, r.number(s, ("step", i, "at"), 0, MAX_DURATION_S, None) if "at" in s
                          else None, after, r.number(s, ("step", i, "delay"), 0, MAX_DURATION_S, 0.0),
                          r.number(s, ("step", i, "timeout_s"), 0.1, MAX_DURATION_S, DEFAULT_STEP_TIMEOUT_S),
                          r.lines.get(("step", i, None))))
    chaos = None
    if "chaos" in doc:
        ch = doc["chaos"]
        if not isinstance(ch, dict):
            raise r.error(("", None, "chaos"), "must be a table [chaos]")
        r.only_keys(ch, "chaos", None, {"duration_s", "seed", "faults", "every_s", "hold_s"})
        faults = r.get(ch, ("chaos", None, "faults"), list, ["kill", "stop", "restart"])
        for f in faults:
            if f not in RECOVERY and f != "restart":
                raise r.error(("chaos", None, "faults"), f"{f!r} is not a chaos fault "
                              f"(one of {', '.join([*RECOVERY, 'restart'])})")
        chaos = Chaos(r.number(ch, ("chaos", None, "duration_s"), 1, MAX_DURATION_S, 300.0),
                      r.integer(ch, ("chaos", None, "seed"), 0, 2**32, 1), tuple(faults),
                      _range(r, ch, ("chaos", None, "every_s"), (5.0, 15.0)),
                      _range(r, ch, ("chaos", None, "hold_s"), (2.0, 8.0)))
    return Scenario(
        name=r.get(doc, ("", None, "name"), str, Path(path).stem),
        liveness_s=r.number(doc, ("", None, "liveness_s"), 0.2, 600, 3.0),
        duration_s=r.number(doc, ("", None, "duration_s"), 1, MAX_DURATION_S + 600, 120.0),
        controller_weight=r.integer(ctl, ("controller", None, "weight"), 1, 10000, 100),
        controller_only=r.get(ctl, ("controller", None, "only"), bool, False),
        members=tuple(members), hubs=tuple(hubs), clients=tuple(clients), steps=tuple(steps), chaos=chaos)


def _range(r: _Reader, doc: dict[str, Any], where: LineKey, default: tuple[float, float]) -> tuple[float, float]:
    value = r.get(doc, where, list, list(default))
    if len(value) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) \
            or not 0 < value[0] <= value[1] <= MAX_DURATION_S:
        raise r.error(where, f"must be [LOW, HIGH] seconds with 0 < LOW <= HIGH, not {value!r}")
    return float(value[0]), float(value[1])


def needs_netns(scenario: Scenario) -> str | None:
    """What in the scenario only the namespace lab (--netns) can do, None if nothing."""
    step = next((s for s in scenario.steps if s.action in NEEDS_NETNS), None)
    if step is not None:
        return f"the step at line {step.line} ({step.action}) needs a link per server"
    if scenario.chaos is not None and NEEDS_NETNS & set(scenario.chaos.faults):
        return "the chaos faults link_down and partition need a link per server"
    if any(h.lan for h in scenario.hubs):
        return "a hub with a LAN needs the namespace lab"
    if any(c.tap for c in scenario.clients):
        return "TAP clients need the namespace lab"
    return None


def chaos_steps(chaos: Chaos, members: list[str], start_at: float) -> list[Step]:
    """Random faults on members from `start_at` for `chaos.duration_s`, each
    followed by its recovery; seeded, so a run can be repeated. At most one
    member is faulty at a time (a cluster that loses every member at once
    has nowhere to move sessions)."""
    rng = random.Random(chaos.seed)
    steps: list[Step] = []
    t = start_at + rng.uniform(*chaos.every_s)
    end = start_at + chaos.duration_s
    for _ in range(MAX_STEPS // 2):
        if t >= end:
            break
        action, target = rng.choice(chaos.faults), rng.choice(members)
        steps.append(Step(action, target, t, None, 0.0, DEFAULT_STEP_TIMEOUT_S, None))
        if action != "restart":
            hold = min(rng.uniform(*chaos.hold_s), max(0.0, end - t))
            steps.append(Step(RECOVERY[action], target, t + hold, None, 0.0, DEFAULT_STEP_TIMEOUT_S, None))
            t += hold
        t += rng.uniform(*chaos.every_s)
    return steps
