"""Which cluster role a node runs, and switching it at run time (CLUSTER.md decision 8).

`make_role` builds the role for the saved mode (standalone: none);
`switch_role` stops the running one and starts the new one. Switches are
serialised per server (a lock kept on the VpnServer), so two quick
SetFarmSetting calls cannot leave two roles running. A role that fails to
start leaves the node standalone in effect (logged); its mode stays saved,
so the next start or switch tries again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from node.cluster.controller_role import ControllerRole
from node.cluster.member_role import MemberRole
from node.state import model

log = logging.getLogger("vpnd.cluster")


def make_role(server: Any, listener: Any) -> Any:
    """A ControllerRole, a MemberRole, or None (standalone), not started."""
    server_type = server.state.config.farm.server_type
    if server_type == model.SERVER_CONTROLLER:
        return ControllerRole(server, listener)
    if server_type == model.SERVER_MEMBER:
        return MemberRole(server)
    return None


def _lock(server: Any) -> asyncio.Lock:
    lock = getattr(server, "_role_lock", None)
    if lock is None:
        lock = asyncio.Lock()
        server._role_lock = lock
    return lock


async def switch_role(server: Any, listener: Any) -> Any:
    """Stop the running role (if any), start the one for the saved mode; return it."""
    async with _lock(server):
        old, server.cluster = server.cluster, None
        if old is not None:
            try:
                await old.stop()
            except Exception:
                log.exception("stopping the %s failed", type(old).__name__)
        if server.dynamic_instances:
            # The data plane follows the config by itself: only placements
            # of the old role are left to undo.
            server.dynamic_instances.clear()
            server.refresh_dataplane()
        role = make_role(server, listener)
        if role is None:
            return None
        try:
            await role.start()
        except Exception:
            log.exception("starting the %s failed; the node runs without its cluster role", type(role).__name__)
            try:
                await role.stop()
            except Exception:
                log.exception("cleaning up the failed %s", type(role).__name__)
            return None
        server.cluster = role
        return role


async def stop_role(server: Any) -> None:
    """Stop the running role (shutdown)."""
    async with _lock(server):
        old, server.cluster = server.cluster, None
        if old is not None:
            await old.stop()
