"""The listener's TCP connections (node/connections.py): EnumConnection,
GetConnectionInfo, DisconnectConnection, server administrator only, with
SoftEther's fields (Admin.c StEnumConnection and friends).

A VPN session's connection is not among them once its login succeeded, as in
SoftEther; DisconnectSession ends a session. `Hostname_str` is the peer's
address as text: vpnd does no reverse DNS lookups. GetConnectionInfo's
client fields (ClientStr, ClientVer, ClientBuild) are empty: vpnd keeps no
client identification for a connection that is not a session."""

from __future__ import annotations

from typing import Any

from node.admin.dispatch import AdminContext, Scope, admin_method
from node.admin.jsonrpc import RpcError
from node.admin.jsonvalue import Params, dt
from node.connections import TcpConnection
from node.server import COMPAT_BUILD, COMPAT_VERSION, PRODUCT_NAME
from node.softether.errors import Err


def _row(conn: TcpConnection) -> dict[str, Any]:
    return {"Name_str": conn.name, "Hostname_str": conn.ip, "Ip_ip": conn.ip, "Port_u32": conn.port,
            "ConnectedTime_dt": dt(conn.connected_at), "Type_u32": conn.type}


def _named(ctx: AdminContext, p: Params) -> TcpConnection:
    name = p.str("Name")
    if not name:
        raise RpcError(Err.INVALID_PARAMETER, "Name_str is empty")
    conn = ctx.server.connections.find(name)
    if conn is None:
        raise RpcError(Err.OBJECT_NOT_FOUND, f"no connection {name!r}")
    return conn


@admin_method("EnumConnection", Scope.SERVER)
def enum_connection(ctx: AdminContext, p: Params) -> dict[str, Any]:
    return {"ConnectionList": [_row(conn) for conn in ctx.server.connections]}


@admin_method("GetConnectionInfo", Scope.SERVER)
def get_connection_info(ctx: AdminContext, p: Params) -> dict[str, Any]:
    return {**_row(_named(ctx, p)), "ServerStr_str": PRODUCT_NAME, "ServerVer_u32": COMPAT_VERSION,
            "ServerBuild_u32": COMPAT_BUILD, "ClientStr_str": "", "ClientVer_u32": 0, "ClientBuild_u32": 0}


@admin_method("DisconnectConnection", Scope.SERVER)
def disconnect_connection(ctx: AdminContext, p: Params) -> dict[str, Any]:
    conn = _named(ctx, p)
    conn.close()
    return {"Name_str": conn.name}
