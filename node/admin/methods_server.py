"""Server-wide admin methods: Test, GetServerInfo, GetServerStatus,
SetServerPassword, GetServerCert, Flush (names and fields as SoftEther's Admin.c).

Flush (vpncmd's Flush, which scripts run before a kill -9) has nothing to
write: every change is already on disk, written atomically. It answers the
configuration file's size, as SoftEther's StFlush does after writing it.

GetServerCert gives the certificate only: unlike SoftEther, which sends the
server administrator its private key too, vpnd never lets the key leave
the state directory (vpncmd's ServerKeyGet then reports error 52, as it
does for a hub administrator)."""

from __future__ import annotations

import time
from typing import Any

from node.admin.dispatch import AdminContext, Scope, admin_method
from node.admin.fields import traffic
from node.admin.jsonrpc import RpcError
from node.admin.jsonvalue import Params, b64, dt
from controller.registry import Member
from node.server import COMPAT_BUILD, COMPAT_VERSION, PRODUCT_NAME, VERSION_TEXT, VpnServer
from node.softether.errors import Err
from node.softether.sha0 import EMPTY_PASSWORD_HASH, hash_admin_password
from node.state import model

OS_TYPE_LINUX = 3100  # OSTYPE_LINUX in SoftEther's Mayaqua/OS.h


@admin_method("Test", Scope.ANY)
def test(ctx: AdminContext, p: Params) -> dict[str, Any]:
    value = p.u32("IntValue")
    return {"IntValue_u32": value, "Int64Value_u64": p.u64("Int64Value"),
            "StrValue_str": str(value), "UniStrValue_utf": p.utf("UniStrValue")}


@admin_method("GetServerInfo", Scope.ANY)
def get_server_info(ctx: AdminContext, p: Params) -> dict[str, Any]:
    os_info = ctx.server.os_info()
    return {
        "ServerProductName_str": PRODUCT_NAME,
        "ServerVersionString_str": f"Version {VERSION_TEXT}",
        "ServerBuildInfoString_str": f"Compiled for {os_info['system']} {os_info['machine']} (Python)",
        "ServerVerInt_u32": COMPAT_VERSION,
        "ServerBuildInt_u32": COMPAT_BUILD,
        "ServerHostName_str": ctx.server.hostname,
        "ServerType_u32": ctx.server.state.config.farm.server_type,
        "ServerBuildDate_dt": dt(ctx.server.started_at),
        "ServerFamilyName_str": "vpncluster",
        "OsType_u32": OS_TYPE_LINUX,
        "OsServicePack_u32": 0,
        "OsSystemName_str": os_info["system"],
        "OsProductName_str": os_info["system"],
        "OsVendorName_str": "",
        "OsVersion_str": os_info["release"],
        "KernelName_str": os_info["system"],
        "KernelVersion_str": os_info["version"],
    }


def _meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes (empty where there is no /proc)."""
    out: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    out[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return out


def remote_members(server: VpnServer) -> list[Member]:
    """On a running controller, the listed members but itself, whose figures
    SoftEther's controller adds to its own in GetServerStatus and EnumHub;
    [] elsewhere."""
    role = server.cluster.controller
    if server.state.config.farm.server_type != model.SERVER_CONTROLLER or role is None:
        return []
    return [m for m in role.listed_members() if not m.is_me]


def hubs_here(server: VpnServer) -> list[model.Hub]:
    """The configured hubs that exist on this server, as SoftEther's Cedar
    HubList that StEnumHub and StGetServerStatus walk: every hub on a
    standalone server or a controller; on a member its static hubs (the
    controller creates each on every member, SiHubUpdateProc) and only the
    dynamic hubs placed here (created by SiCallCreateHub when the controller
    places the hub, deleted by SiCallDeleteHub once its last session left).
    Checked against SoftEther 5.01: a member lists no dynamic hub without
    sessions."""
    config = server.state.config
    if config.farm.server_type != model.SERVER_MEMBER:
        return list(config.hubs)
    return [hub for hub in config.hubs
            if hub.hub_type != model.HUB_DYNAMIC or hub.name in server.dynamic_instances]


def _remote_load(server: VpnServer) -> tuple[int, int]:
    members = remote_members(server)
    return sum(m.sessions for m in members), sum(m.tcp_connections for m in members)


@admin_method("GetServerStatus", Scope.SERVER)
def get_server_status(ctx: AdminContext, p: Params) -> dict[str, Any]:
    server = ctx.server
    config = server.state.config
    here = hubs_here(server)
    by_type = [h.hub_type for h in here]
    totals: dict[str, int] = {}
    mac = ip = 0
    for hub in server.hubs.values():
        mac += hub.mac_table_size()
        ip += hub.ip_table_size()
        for key, value in hub.traffic().items():
            totals[key] = totals.get(key, 0) + value
    sessions, tcp = server.session_count(), server.tcp_connection_count()
    remote_sessions, remote_tcp = _remote_load(server)
    mem = _meminfo()
    total, free = mem.get("MemTotal", 0), mem.get("MemAvailable", 0)
    now = time.time()
    return {
        "ServerType_u32": config.farm.server_type,
        "NumHubTotal_u32": len(by_type),
        "NumHubStandalone_u32": by_type.count(model.HUB_STANDALONE),
        "NumHubStatic_u32": by_type.count(model.HUB_STATIC),
        "NumHubDynamic_u32": by_type.count(model.HUB_DYNAMIC),
        "NumSessionsTotal_u32": sessions + remote_sessions,
        "NumSessionsLocal_u32": sessions,
        "NumSessionsRemote_u32": remote_sessions,
        "NumTcpConnections_u32": tcp + remote_tcp,
        "NumTcpConnectionsLocal_u32": tcp,
        "NumTcpConnectionsRemote_u32": remote_tcp,
        "NumMacTables_u32": mac,
        "NumIpTables_u32": ip,
        "NumUsers_u32": sum(len(h.users) for h in here),
        "NumGroups_u32": 0,
        "AssignedBridgeLicenses_u32": 0,
        "AssignedClientLicenses_u32": 0,
        "AssignedBridgeLicensesTotal_u32": 0,
        "AssignedClientLicensesTotal_u32": 0,
        "CurrentTime_dt": dt(now),
        "CurrentTick_u64": int(time.monotonic() * 1000),
        "StartTime_dt": dt(server.started_at),
        **traffic(totals),
        "TotalMemory_u64": total, "UsedMemory_u64": max(total - free, 0), "FreeMemory_u64": free,
        "TotalPhys_u64": total, "UsedPhys_u64": max(total - free, 0), "FreePhys_u64": free,
    }


@admin_method("EnumListener", Scope.SERVER)
def enum_listener(ctx: AdminContext, p: Params) -> dict[str, Any]:
    """StEnumListener: one row per listening port, in the config's order.
    vpnd does not start unless every listener is bound, so none is enabled
    and failing (SoftEther's Errors: still trying to bind). Listeners come
    from --listen and the config; the API does not create or delete them."""
    ports = dict.fromkeys(model.listener_address(text)[1] for text in ctx.server.state.config.listeners)
    return {"ListenerList": [{"Ports_u32": port, "Enables_bool": True, "Errors_bool": False} for port in ports]}


@admin_method("SetServerPassword", Scope.SERVER)
def set_server_password(ctx: AdminContext, p: Params) -> dict[str, Any]:
    hashed = p.bin("HashedPassword")
    if not any(hashed):
        hashed = hash_admin_password(p.password("PlainTextPassword"))
    if len(hashed) != 20:
        raise RpcError(Err.INVALID_PARAMETER, "HashedPassword_bin must be 20 bytes")
    if hashed == EMPTY_PASSWORD_HASH:
        raise RpcError(Err.INVALID_PARAMETER, "an empty server administrator password is not allowed")

    def apply(config: model.Server) -> None:
        config.admin_password_hash = hashed
    ctx.server.state.change(apply)
    return {"HashedPassword_bin": b64(hashed), "PlainTextPassword_str": ""}


@admin_method("GetServerCert", Scope.ANY)
def get_server_cert(ctx: AdminContext, p: Params) -> dict[str, Any]:
    return {"Cert_bin": b64(ctx.server.cert_der), "Flag1_u32": 0}


@admin_method("Flush", Scope.SERVER)
def flush(ctx: AdminContext, p: Params) -> dict[str, Any]:
    try:
        size = ctx.server.state.store.path.stat().st_size
    except OSError as e:
        raise RpcError(Err.INTERNAL_ERROR, f"configuration file: {e.strerror}") from None
    return {"IntValue_u32": size, "Int64Value_u64": 0, "StrValue_str": "", "UniStrValue_utf": ""}
