"""Asking every member at once: the controller's side of collective
administration (CLUSTERING.md §3.9.10).

On a running controller, an admin call about sessions or tables sends one
request to every listed member at the same time (ControllerRole.request)
and waits for all of them, but never past one deadline: `timeout_s`
(0.3 s by default) for each bus request, and the same figure plus a small
slack for the whole gathering, after which unfinished requests are
cancelled. A member that did not answer in time, could not be reached or
answered with an unexpected error is *missing*: the call still answers
with everyone else's rows, logs one line per missing member and names it
in the JSON answer under `MissingServers` -- a key with no SoftEther type
suffix, which SoftEther's JSON-to-PACK conversion ignores and JSON clients
skip; vpnctl prints it under the table.

SoftEther asks its members one after another (SiEnumSessionMain, its
farm task channel has no per-call deadline), so one hung member blocks the
controller's admin calls; here the gathering is concurrent and bounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from controller.errors import ControllerError
from node.state import model
from vpnbus.endpoint import RemoteError
from vpnbus.sockets import BusError

if TYPE_CHECKING:
    from controller.registry import Member
    from node.server import VpnServer

log = logging.getLogger("vpnd.admin")

GATHER_TIMEOUT_S = 0.3
"""Deadline of each member's answer to an admin call."""
GATHER_SLACK_S = 0.05
"""The whole gathering ends at most this long after the per-request deadline."""
MISSING_KEY = "MissingServers"
"""The JSON answer's list of servers that did not answer (no SoftEther suffix: ignored by SoftEther clients)."""


class Asker(Protocol):
    """What the gathering needs of the controller role (ControllerRole has it)."""

    def listed_members(self) -> list[Member]: ...

    async def request(self, member_id: int, message: object, timeout_s: float = ...) -> object: ...


@dataclass(frozen=True, slots=True)
class Server:
    """One member asked."""

    member_id: int
    hostname: str


@dataclass(frozen=True, slots=True)
class Answered:
    server: Server
    reply: object


@dataclass(frozen=True, slots=True)
class Refused:
    """The member answered with a bus error (a SoftEther code, e.g. ERR_OBJECT_NOT_FOUND)."""

    server: Server
    code: int
    text: str


@dataclass(frozen=True, slots=True)
class Missing:
    """No usable answer in time."""

    server: Server
    reason: str


Outcome = Answered | Refused | Missing


def controller_of(server: VpnServer) -> Asker | None:
    """The running controller role of a controller node; None elsewhere
    (standalone, member, or a controller whose role is not running)."""
    if server.state.config.farm.server_type != model.SERVER_CONTROLLER:
        return None
    return server.cluster.controller


async def _ask(role: Asker, who: Server, message: object, timeout_s: float) -> Outcome:
    try:
        reply = await role.request(who.member_id, message, timeout_s=timeout_s)
    except RemoteError as exc:
        return Refused(who, exc.code, exc.text)
    except (BusError, ControllerError, ValueError) as exc:  # ValueError: over the bus's frame limit
        return Missing(who, str(exc) or type(exc).__name__)
    return Answered(who, reply)


async def ask_members(role: Asker, message: object, timeout_s: float = GATHER_TIMEOUT_S) -> list[Outcome]:
    """Send `message` to every listed member but the controller itself,
    concurrently; one outcome per member, in the listing's order. Returns
    within `timeout_s` + GATHER_SLACK_S whatever the members do."""
    asked = [Server(m.member_id, m.hostname) for m in role.listed_members() if not m.is_me]
    if not asked:
        return []
    tasks = [asyncio.ensure_future(_ask(role, who, message, timeout_s)) for who in asked]
    done, pending = await asyncio.wait(tasks, timeout=timeout_s + GATHER_SLACK_S)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    outcomes: list[Outcome] = []
    for who, task in zip(asked, tasks):
        if task in done and not task.cancelled() and task.exception() is None:
            outcomes.append(task.result())
        elif task in done and not task.cancelled():
            outcomes.append(Missing(who, f"internal error: {task.exception()!r}"))
        else:
            outcomes.append(Missing(who, f"no answer within {timeout_s:g} s"))
    return outcomes


def note_missing(method: str, hub: str, missing: Sequence[Missing | Refused]) -> list[dict[str, Any]]:
    """Log each server that did not answer and return the `MissingServers` entries."""
    out = []
    for m in missing:
        reason = m.reason if isinstance(m, Missing) else f"error {m.code}: {m.text}"
        log.warning("%s of hub %s: cluster member %d (%s) is missing: %s",
                    method, hub, m.server.member_id, m.server.hostname, reason)
        out.append({"Id": m.server.member_id, "Hostname": m.server.hostname, "Reason": reason})
    return out
