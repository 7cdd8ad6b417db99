"""Hub placement: where hub instances run and which server takes a session.

Static hub (manual 3.9.7): an instance on every server. Every server runs
its static hubs from the configuration the controller pushes to it (the
member's data plane follows its config), so placement sends nothing for
them: it only lists the instance on every live server (creation, and a
(re)join) so selection and the admin views see it at once. A session goes to the server that `selection` chooses (highest
points), except that an `administrator` login stays on the controller
(SoftEther `SiGetHubHostingMember`, admin mode).

Dynamic hub (manual 3.9.8): at most one instance in the cluster. A session
goes to the live server that already hosts it (the last one found in list
order wins, as in `SiGetHubHostingMember`; a hub we just placed and whose
host has not reported it yet counts too); otherwise the selected server
gets a CreateHubInstance, is recorded as the host at once (SoftEther's
`SiCallCreateHub` adds the hub to the member's list), and the hub enters
the create history for 60 s (`SiAddHubCreateHistory`, `TICKET_EXPIRES`)
so that the empty instance is not deleted before its first session
arrives. On a status report, an instance of a dynamic hub with 0 sessions
that is not in the create history gets a DeleteHubInstance (the
`SiFarmControlThread` poll rule); one with sessions leaves the history.

Where we differ: if a dynamic hub runs on two servers (a member kept its
sessions through a partition while the hub was placed again elsewhere),
the instance on the recorded host stays and the other is deleted, so its
clients reconnect through the controller to the one instance and the hub
is again one L2 segment. Reported instances of hubs the controller does
not know are deleted.

Dynamic hub life is one transition table (absent -> starting -> running ->
stopping -> absent); only this module changes it. Everything returns
actions (CreateHubInstance / DeleteHubInstance) and decision records; the
caller does the I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from controller.errors import HubTypeImmutable, HubUnknown, IllegalTransition
from controller.registry import EMPTY_SKIP, ME_ID, Registry, hub_key
from controller.selection import TICKET_LIFETIME_S, SelectionDecision, SelectionPolicy

CREATE_HISTORY_S = TICKET_LIFETIME_S


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateHubInstance:
    """Ask `member_id` to start an instance of `hub` (with its current config)."""

    member_id: int
    hub: str
    dynamic: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteHubInstance:
    """Ask `member_id` to stop its instance of `hub` (its sessions end)."""

    member_id: int
    hub: str
    reason: str


Action = CreateHubInstance | DeleteHubInstance


@dataclass(frozen=True, slots=True, kw_only=True)
class PlacementDecision:
    """Where a session to `hub` goes and why; logged and shown by vpnctl."""

    hub: str
    member_id: int
    reason: str
    selection: SelectionDecision | None
    """The member selection, when one was made."""
    actions: tuple[Action, ...]
    """To do before the ticket is created (e.g. start the dynamic hub)."""


class HubLife(enum.Enum):
    ABSENT = "absent"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"


class HubEvent(enum.Enum):
    PLACED = "placed"
    """A server was told to create the instance."""
    REPORTED_BUSY = "reported busy"
    """Its host reported it with at least one session."""
    EMPTIED = "emptied"
    """Its host reported it empty after the create history: delete sent."""
    GONE = "gone"
    """Its host no longer has it (not reported, evicted, hub deleted)."""


L, H = HubLife, HubEvent

HUB_TRANSITIONS: dict[tuple[HubLife, HubEvent], HubLife] = {
    (L.ABSENT, H.PLACED): L.STARTING,
    # An instance found in a report (a rejoining member, a restarted controller).
    (L.ABSENT, H.REPORTED_BUSY): L.RUNNING,
    (L.STARTING, H.REPORTED_BUSY): L.RUNNING,
    (L.STARTING, H.EMPTIED): L.STOPPING,
    (L.STARTING, H.GONE): L.ABSENT,
    (L.RUNNING, H.REPORTED_BUSY): L.RUNNING,
    (L.RUNNING, H.EMPTIED): L.STOPPING,
    (L.RUNNING, H.GONE): L.ABSENT,
    # A session arriving while the delete is under way starts a new instance;
    # the member runs its tasks in order, so delete-then-create is safe there.
    (L.STOPPING, H.PLACED): L.STARTING,
    (L.STOPPING, H.EMPTIED): L.STOPPING,
    (L.STOPPING, H.REPORTED_BUSY): L.STOPPING,
    (L.STOPPING, H.GONE): L.ABSENT,
}


def hub_transition(state: HubLife, event: HubEvent) -> HubLife:
    """Next dynamic hub state; raises IllegalTransition naming state and event."""
    try:
        return HUB_TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition("dynamic hub life", state, event) from None


@dataclass(slots=True)
class _Hub:
    name: str
    dynamic: bool
    life: HubLife = HubLife.ABSENT
    host: int | None = None


class Placement:
    """Hub placement over a Registry. `now` is monotonic seconds."""

    def __init__(
        self,
        registry: Registry,
        *,
        controller_only: bool = False,
        policy: SelectionPolicy | None = None,
        create_history_s: float = CREATE_HISTORY_S,
    ) -> None:
        self.registry = registry
        self.controller_only = controller_only
        self.policy = policy
        self._create_history_s = create_history_s
        self._hubs: dict[str, _Hub] = {}
        self._history: dict[str, float] = {}

    # ----- hubs ------------------------------------------------------------

    def hub_created(self, name: str, *, dynamic: bool) -> list[Action]:
        """A hub was created (or re-announced) on the controller.

        Static: listed on every live server (each runs it from its pushed
        config). Dynamic: nothing runs yet. Returns no actions today; the
        list is the contract for callers. Raises HubTypeImmutable if the hub
        exists with the other type.
        """
        key = hub_key(name)
        known = self._hubs.get(key)
        if known is not None:
            if known.dynamic != dynamic:
                raise HubTypeImmutable(f"hub {name!r} is {'dynamic' if known.dynamic else 'static'}")
            return []
        self._hubs[key] = _Hub(name=name, dynamic=dynamic)
        if not dynamic:
            for member_id in self.registry.live_ids():
                self.registry.record_hub_instance(member_id, name, dynamic=False)
        return []

    def hub_deleted(self, name: str) -> list[Action]:
        """A hub was deleted on the controller: stop every dynamic instance
        of it (static instances end with the pushed config)."""
        key = hub_key(name)
        hub = self._hubs.pop(key, None)
        if hub is None:
            raise HubUnknown(f"no hub {name!r}")
        self._history.pop(key, None)
        hosts = set(self.registry.hosting_members(name))
        if hub.host is not None and hub.life is not HubLife.ABSENT:
            hosts.add(hub.host)
        actions: list[Action] = []
        for member_id in sorted(hosts):
            self.registry.drop_hub_instance(member_id, name)
            if hub.dynamic:
                actions.append(DeleteHubInstance(member_id=member_id, hub=hub.name, reason="hub deleted"))
        return actions

    def sync_hubs(self, wanted: dict[str, bool]) -> list[Action]:
        """Make the known hubs equal to `wanted` (every cluster hub of the
        config: name -> dynamic): hubs created and deleted since the last
        call go through hub_created / hub_deleted, and a hub whose type
        changed (a mode change made standalone hubs dynamic, a restored
        config; the admin API refuses SetHub type changes as SoftEther does)
        is deleted and created again with its new type, so its dynamic
        instances stop and its old records are forgotten. Returns the
        actions."""
        actions: list[Action] = []
        wanted_types = {hub_key(name): dynamic for name, dynamic in wanted.items()}
        for name in self.hub_names():
            if wanted_types.get(hub_key(name), not self.is_dynamic(name)) is not self.is_dynamic(name):
                actions += self.hub_deleted(name)  # gone, or of the other type now
        for name, dynamic in wanted.items():
            actions += self.hub_created(name, dynamic=dynamic)
        return actions

    def hub_names(self) -> list[str]:
        """Every hub placement knows, in creation order."""
        return [hub.name for hub in self._hubs.values()]

    def is_dynamic(self, name: str) -> bool:
        """Raises HubUnknown."""
        return self._known(name).dynamic

    def hub_life(self, name: str) -> HubLife:
        """Life of a dynamic hub (static hubs are always RUNNING)."""
        hub = self._known(name)
        return hub.life if hub.dynamic else HubLife.RUNNING

    def hub_host(self, name: str) -> int | None:
        """The recorded host of a dynamic hub, if any."""
        return self._known(name).host

    # ----- sessions ----------------------------------------------------------

    def place_session(self, name: str, now: float, *, admin: bool = False,
                      skip: Mapping[int, str] = EMPTY_SKIP) -> PlacementDecision:
        """Choose the server for a new session to hub `name`, none of `skip`
        (server id -> why: e.g. it did not acknowledge a ticket just now; a
        dynamic hub whose host is skipped is placed again elsewhere).

        Raises HubUnknown, or NoEligibleServer when no server may take it.
        The caller performs `actions`, then creates the ticket on the chosen
        server (or goes on locally if it is the controller) and calls
        `registry.note_redirect(member_id, now)` in both cases, so the load
        counts before the next status report (`update_me` for the controller).
        """
        hub = self._known(name)
        if not hub.dynamic:
            if admin:
                return PlacementDecision(hub=hub.name, member_id=ME_ID, selection=None, actions=(),
                                         reason="administrator login stays on the controller")
            sel = self.registry.select(now, controller_only=self.controller_only, policy=self.policy, skip=skip)
            assert sel.chosen is not None
            return PlacementDecision(hub=hub.name, member_id=sel.chosen, selection=sel, actions=(),
                                     reason=f"static hub: {sel.reason}")
        host = self._current_host(hub)
        if host is not None and host in skip:
            self._instance_gone(hub)
            host = None
        if host is not None:
            return PlacementDecision(hub=hub.name, member_id=host, selection=None, actions=(),
                                     reason=f"dynamic hub already runs on {host}")
        sel = self.registry.select(now, controller_only=self.controller_only, policy=self.policy, skip=skip)
        assert sel.chosen is not None
        self._set_life(hub, HubEvent.PLACED)
        hub.host = sel.chosen
        self._history[hub_key(name)] = now
        self.registry.record_hub_instance(sel.chosen, hub.name, dynamic=True)
        create = CreateHubInstance(member_id=sel.chosen, hub=hub.name, dynamic=True)
        return PlacementDecision(hub=hub.name, member_id=sel.chosen, selection=sel, actions=(create,),
                                 reason=f"dynamic hub started: {sel.reason}")

    # ----- members -----------------------------------------------------------

    def member_joined(self, member_id: int) -> None:
        """A server (re)joined: list every static hub on it (its pushed config runs them)."""
        for hub in self._hubs.values():
            if not hub.dynamic:
                self.registry.record_hub_instance(member_id, hub.name, dynamic=False)

    def member_gone(self, member_id: int) -> None:
        """A server was evicted or left: dynamic hubs it hosted are absent."""
        for hub in self._hubs.values():
            if hub.dynamic and hub.host == member_id:
                self._instance_gone(hub)

    def status_reported(self, member_id: int, now: float) -> list[Action]:
        """Apply the member's latest status (already in the registry); return deletes."""
        self._expire_history(now)
        member = self.registry.get(member_id)
        actions: list[Action] = []
        for key, inst in member.hubs.items():
            hub = self._hubs.get(key)
            if hub is None:
                actions.append(DeleteHubInstance(member_id=member_id, hub=inst.name, reason="unknown hub"))
            elif hub.dynamic:
                actions.extend(self._dynamic_report(hub, member_id, inst.sessions, now))
        for hub in self._hubs.values():
            if hub.dynamic and hub.host == member_id and hub_key(hub.name) not in member.hubs:
                # Not reported: gone, unless the create is still on its way.
                if not (hub.life is HubLife.STARTING and hub_key(hub.name) in self._history):
                    self._instance_gone(hub)
        for action in actions:
            self.registry.drop_hub_instance(action.member_id, action.hub)
        return actions

    # ----- time --------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        self._expire_history(now)

    def next_deadline(self) -> float | None:
        return min(self._history.values()) + self._create_history_s if self._history else None

    def in_create_history(self, name: str, now: float) -> bool:
        self._expire_history(now)
        return hub_key(name) in self._history

    # ----- internals -----------------------------------------------------------

    def _dynamic_report(self, hub: _Hub, member_id: int, sessions: int, now: float) -> list[Action]:
        key = hub_key(hub.name)
        elsewhere = hub.host is not None and hub.host != member_id and hub.life is not HubLife.ABSENT
        if elsewhere:
            reason = "duplicate dynamic hub instance"
            return [DeleteHubInstance(member_id=member_id, hub=hub.name, reason=reason)]
        if sessions > 0:
            self._history.pop(key, None)
            self._set_life(hub, HubEvent.REPORTED_BUSY)
            hub.host = member_id
            return []
        if key in self._history:
            return []
        if hub.life is not HubLife.ABSENT:
            self._set_life(hub, HubEvent.EMPTIED)
        return [DeleteHubInstance(member_id=member_id, hub=hub.name, reason="dynamic hub has no sessions")]

    def _current_host(self, hub: _Hub) -> int | None:
        if hub.life in (HubLife.STARTING, HubLife.RUNNING):
            if hub.host in self.registry.live_ids():
                # The recorded host wins over a stale duplicate in the list.
                return hub.host
            # Its host is rejoining or gone without an eviction we were told of.
            self._instance_gone(hub)
        hosts = [
            m for m in self.registry.hosting_members(hub.name)
            if not (hub.life is HubLife.STOPPING and m == hub.host)
        ]
        return hosts[-1] if hosts else None

    def _instance_gone(self, hub: _Hub) -> None:
        if hub.life is not HubLife.ABSENT:
            self._set_life(hub, HubEvent.GONE)
        hub.host = None
        self._history.pop(hub_key(hub.name), None)

    def _set_life(self, hub: _Hub, event: HubEvent) -> None:
        hub.life = hub_transition(hub.life, event)

    def _known(self, name: str) -> _Hub:
        try:
            return self._hubs[hub_key(name)]
        except KeyError:
            raise HubUnknown(f"no hub {name!r}") from None

    def _expire_history(self, now: float) -> None:
        for key, at in list(self._history.items()):
            if now >= at + self._create_history_s:
                del self._history[key]
