"""Which cluster role a node runs, and switching it at run time (CLUSTER.md decision 8).

`ClusterRoles` (one per VpnServer, `server.cluster`) holds the running
role: a ControllerRole, a MemberRole, or none (standalone). `switch()`
stops the running one and starts the one for the saved mode. Switches are
serialised by the holder's own lock, so two quick SetFarmSetting calls
cannot leave two roles running; `request_switch()` starts one from
synchronous code (the admin API) and keeps its task until it ends. A role
that fails to start leaves the node standalone in effect (logged); its
mode stays saved, so the next start or switch tries again.

Readers get the role they need, typed: `controller` or `member` (None
when another role, or none, runs).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from node.cluster.controller_role import ControllerRole
from node.cluster.member_role import MemberRole
from node.state import model

if TYPE_CHECKING:
    from node.server import VpnServer

log = logging.getLogger("vpnd.cluster")

Role = ControllerRole | MemberRole


def make_role(server: VpnServer) -> Role | None:
    """The role for the saved mode, not started (standalone: None)."""
    server_type = server.state.config.farm.server_type
    if server_type == model.SERVER_CONTROLLER:
        return ControllerRole(server)
    if server_type == model.SERVER_MEMBER:
        return MemberRole(server)
    return None


class ClusterRoles:
    """The running cluster role of one server."""

    def __init__(self, server: VpnServer) -> None:
        self._server = server
        self._role: Role | None = None
        self._lock = asyncio.Lock()
        self._switches: set[asyncio.Task[Role | None]] = set()

    @property
    def role(self) -> Role | None:
        return self._role

    @property
    def controller(self) -> ControllerRole | None:
        """The running controller role, if this node runs one."""
        return self._role if isinstance(self._role, ControllerRole) else None

    @property
    def member(self) -> MemberRole | None:
        """The running member role, if this node runs one."""
        return self._role if isinstance(self._role, MemberRole) else None

    async def switch(self) -> Role | None:
        """Stop the running role (if any), start the one for the saved mode; return it."""
        async with self._lock:
            await self._stop_running()
            role = make_role(self._server)
            if role is None:
                return None
            try:
                await role.start()
            except Exception:
                log.exception("starting the %s failed; the node runs without its cluster role",
                              type(role).__name__)
                try:
                    await role.stop()
                except Exception:
                    log.exception("cleaning up the failed %s", type(role).__name__)
                return None
            self._role = role
            return role

    def request_switch(self) -> None:
        """Start a switch from synchronous code (e.g. SetFarmSetting); it runs
        after earlier ones (the lock) and is kept until it ends."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop: nothing runs a role (the config is applied at the next start)
        task = loop.create_task(self.switch())
        self._switches.add(task)
        task.add_done_callback(self._switches.discard)

    async def stop(self) -> None:
        """Stop the running role (shutdown); its failure is raised."""
        async with self._lock:
            old, self._role = self._role, None
            self._server.dynamic_instances.clear()
            if old is not None:
                await old.stop()

    async def _stop_running(self) -> None:
        old, self._role = self._role, None
        if old is not None:
            try:
                await old.stop()
            except Exception:
                log.exception("stopping the %s failed", type(old).__name__)
        # The data plane follows the config by itself: only placements of the
        # old role are left to undo.
        self._server.dynamic_instances.clear()
