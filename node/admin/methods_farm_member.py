"""GetFarmConnectionStatus: a member's link to its controller, with SoftEther's
names and numbers (Admin.c StGetFarmConnectionStatus). Counters come from the
running member role (node/cluster/member_link.py); `Ip_ip`/`Port_u32` are the
controller's address and listener port once it was reached (0.0.0.0 / 0
before), LastError is 0 while online."""

from __future__ import annotations

from typing import Any

from node.admin.dispatch import AdminContext, Scope, admin_method
from node.admin.jsonrpc import RpcError
from node.admin.jsonvalue import Params, dt, ip
from node.softether.errors import Err
from node.state import model


@admin_method("GetFarmConnectionStatus", Scope.SERVER)
def get_farm_connection_status(ctx: AdminContext, p: Params) -> dict[str, Any]:
    server = ctx.server
    if server.state.config.farm.server_type != model.SERVER_MEMBER:
        raise RpcError(Err.NOT_FARM_MEMBER)
    role = server.cluster.member
    if role is None:
        # Member mode saved but its role not (yet) running: a mode switch is
        # under way. Nothing was tried yet.
        return _render("0.0.0.0", 0, False, Err.TRYING_TO_CONNECT, 0.0, 0.0, 0.0, 0, 0, 0)
    status = role.status()
    link = status.link
    return _render(status.controller_ip, status.controller_port, link.online, link.last_error,
                   status.started_time, status.current_connected_time, status.first_connected_time,
                   link.num_connected, link.num_try, link.num_failed)


def _render(controller_ip: str, port: int, online: bool, last_error: int, started: float,
            current: float, first: float, connected: int, tries: int, failed: int) -> dict[str, Any]:
    return {
        "Ip_ip": ip(controller_ip),
        "Port_u32": port,
        "Online_bool": online,
        "LastError_u32": int(last_error),
        "StartedTime_dt": dt(started),
        "CurrentConnectedTime_dt": dt(current),
        "FirstConnectedTime_dt": dt(first),
        "NumConnected_u32": connected,
        "NumTry_u32": tries,
        "NumFailed_u32": failed,
    }
