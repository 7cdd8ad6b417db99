"""Virtual Hub admin methods: CreateHub, SetHub, GetHub, EnumHub, DeleteHub,
SetHubOnline, GetHubStatus (Admin.c StCreateHub and friends).

Rules kept from SoftEther: a standalone server only has hubs of type 0, a
controller only static (1) or dynamic (2) hubs, a member creates none
(ERR_NOT_FARM_CONTROLLER); a hub's type never changes after creation
(ERR_NOT_SUPPORTED, StSetHub in 5.01; vpncmd's HubSetStatic/HubSetDynamic
get exactly that); names are SoftEther "safe strings". EnumHub lists the hubs
that exist on this server (methods_server.hubs_here): a member shows a
dynamic hub only while the controller has placed it there.
"""

from __future__ import annotations

import time
from typing import Any

from node.admin.dispatch import AdminContext, Scope, admin_method
from node.admin.fields import traffic
from node.admin.jsonrpc import RpcError
from node.admin.jsonvalue import Params, b64, dt
from node.admin.methods_server import hubs_here, remote_members
from node.softether.errors import Err
from node.softether.sha0 import EMPTY_PASSWORD_HASH, hash_admin_password, hash_password
from node.state import model

_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ()-_#%&.")
MAX_NAME_LEN = 255


def check_hub_name(name: str) -> str:
    name = name.strip()
    if (not name or len(name) > MAX_NAME_LEN or not set(name) <= _SAFE
            or name.startswith(".") or name.endswith(".")):
        raise RpcError(Err.INVALID_PARAMETER, f"invalid hub name {name!r}")
    return name


def existing_hub(config: model.Server, name: str) -> model.Hub:
    hub = config.find_hub(name)
    if hub is None:
        raise RpcError(Err.HUB_NOT_FOUND, f"no hub {name!r}")
    return hub


def refuse_on_member(ctx: AdminContext) -> None:
    if ctx.server.state.config.farm.server_type == model.SERVER_MEMBER:
        raise RpcError(Err.NOT_FARM_CONTROLLER,
                       "hubs, users and hub settings are managed on the cluster controller")


def _check_type(config: model.Server, hub_type: int) -> None:
    if config.farm.server_type == model.SERVER_STANDALONE:
        if hub_type != model.HUB_STANDALONE:
            raise RpcError(Err.INVALID_PARAMETER, "a standalone server only has hubs of type 0")
    elif hub_type not in (model.HUB_STATIC, model.HUB_DYNAMIC):
        raise RpcError(Err.INVALID_PARAMETER, "a cluster hub is static (1) or dynamic (2)")


def _passwords(p: Params) -> tuple[bytes, bytes] | None:
    """(hashed, secure) from the request, or None when it sets no password."""
    plain = p.password("AdminPasswordPlainText")
    if plain:
        return hash_admin_password(plain), hash_password("administrator", plain)
    hashed, secure = p.bin("HashedPassword"), p.bin("SecurePassword")
    if any(hashed) and any(secure):
        if len(hashed) != 20 or len(secure) != 20:
            raise RpcError(Err.INVALID_PARAMETER, "password hashes must be 20 bytes")
        return hashed, secure
    return None


def hub_struct(hub: model.Hub) -> dict[str, Any]:
    return {
        "HubName_str": hub.name,
        "AdminPasswordPlainText_str": "",
        "HashedPassword_bin": b64(hub.hashed_password or bytes(20)),
        "SecurePassword_bin": b64(hub.secure_password or bytes(20)),
        "Online_bool": hub.online,
        "MaxSession_u32": hub.max_session,
        "NoEnum_bool": hub.no_enum,
        "HubType_u32": hub.hub_type,
    }


@admin_method("CreateHub", Scope.SERVER)
def create_hub(ctx: AdminContext, p: Params) -> dict[str, Any]:
    refuse_on_member(ctx)
    name = check_hub_name(p.str("HubName"))
    hub_type = p.u32("HubType")
    passwords = _passwords(p) or (hash_admin_password(""), hash_password("administrator", ""))

    def apply(config: model.Server) -> model.Hub:
        _check_type(config, hub_type)
        if config.find_hub(name):
            raise RpcError(Err.HUB_ALREADY_EXISTS, f"hub {name!r} exists")
        hub = model.Hub(name=name, hub_type=hub_type, online=p.bool("Online"),
                        max_session=p.u32("MaxSession"), no_enum=p.bool("NoEnum"),
                        hashed_password=passwords[0], secure_password=passwords[1],
                        created_time=time.time())
        config.hubs.append(hub)
        return hub
    return hub_struct(ctx.server.state.change(apply))


@admin_method("SetHub", Scope.HUB)
def set_hub(ctx: AdminContext, p: Params) -> dict[str, Any]:
    refuse_on_member(ctx)
    name = check_hub_name(p.str("HubName"))
    hub_type = p.u32("HubType")
    passwords = _passwords(p)
    if passwords and passwords[0] == EMPTY_PASSWORD_HASH and not ctx.is_server_admin:
        # An empty hub password disables hub administration here (auth.py);
        # SoftEther refuses it to a remote hub administrator as well.
        raise RpcError(Err.INVALID_PARAMETER, "a hub administrator cannot set an empty hub password")

    def apply(config: model.Server) -> model.Hub:
        _check_type(config, hub_type)
        hub = existing_hub(config, name)
        if hub.hub_type != hub_type:
            raise RpcError(Err.NOT_SUPPORTED, "a hub's type cannot change after creation")
        hub.online = p.bool("Online")
        hub.max_session = p.u32("MaxSession")
        hub.no_enum = p.bool("NoEnum")
        if passwords:
            hub.hashed_password, hub.secure_password = passwords
        return hub
    return hub_struct(ctx.server.state.change(apply))


@admin_method("GetHub", Scope.HUB)
def get_hub(ctx: AdminContext, p: Params) -> dict[str, Any]:
    refuse_on_member(ctx)   # StGetHub: ERR_NOT_FARM_CONTROLLER on a member
    return hub_struct(existing_hub(ctx.server.state.config, p.str("HubName")))


def _remote_counts(ctx: AdminContext) -> dict[str, tuple[int, int, int]]:
    """Sessions, MAC and IP table entries per hub (lower-case name) on the
    members, which a controller adds to its own (SoftEther's StEnumHub does
    the same from the members' last status)."""
    out: dict[str, tuple[int, int, int]] = {}
    for member in remote_members(ctx.server):
        for hub in member.hubs.values():
            s, m, i = out.get(hub.name.lower(), (0, 0, 0))
            out[hub.name.lower()] = (s + hub.sessions, m + hub.mac_entries, i + hub.ip_entries)
    return out


@admin_method("EnumHub", Scope.ANY)
def enum_hub(ctx: AdminContext, p: Params) -> dict[str, Any]:
    rows = []
    remote = _remote_counts(ctx)
    # sorted by name, as SoftEther's hub list (a sorted LIST, StrCmpi)
    for hub in sorted(hubs_here(ctx.server), key=lambda h: h.name.lower()):
        if not ctx.is_server_admin and hub.name.lower() != (ctx.hub_admin_of or "").lower():
            continue
        run = ctx.server.running_hub(hub.name)
        sessions, macs, ips = remote.get(hub.name.lower(), (0, 0, 0))
        rows.append({
            "HubName_str": hub.name,
            "Online_bool": hub.online,
            "HubType_u32": hub.hub_type,
            "NumSessions_u32": (run.session_count() if run else 0) + sessions,
            "NumUsers_u32": len(hub.users),
            "NumGroups_u32": 0,
            "NumMacTables_u32": (run.mac_table_size() if run else 0) + macs,
            "NumIpTables_u32": (run.ip_table_size() if run else 0) + ips,
            # SoftEther starts both at the hub's creation; vpnd keeps no later time
            "LastCommTime_dt": dt(hub.created_time),
            "CreatedTime_dt": dt(hub.created_time),
            "LastLoginTime_dt": dt(hub.created_time),
            "NumLogin_u32": 0,
            "IsTrafficFilled_bool": run is not None,
            **traffic(run.traffic() if run else None, prefix="Ex."),
        })
    return {"HubList": rows}   # no count field: SoftEther 5.01 sends none


@admin_method("GetHubStatus", Scope.HUB)
def get_hub_status(ctx: AdminContext, p: Params) -> dict[str, Any]:
    """StGetHubStatus: the hub's state and counters on this server (vpncmd's
    `Hub NAME` and /ADMINHUB: select a hub with it, `StatusGet` shows it)."""
    hub = existing_hub(ctx.server.state.config, p.str("HubName"))
    if hub not in hubs_here(ctx.server):
        raise RpcError(Err.HUB_NOT_FOUND, f"hub {hub.name!r} has no instance on this server")
    run = ctx.server.running_hub(hub.name)
    remote_sessions, macs, ips = _remote_counts(ctx).get(hub.name.lower(), (0, 0, 0))  # as StGetHubStatus adds them
    sessions = (run.session_count() if run else 0) + remote_sessions
    return {
        "HubName_str": hub.name,
        "Online_bool": hub.online,
        "HubType_u32": hub.hub_type,
        "NumSessions_u32": sessions,
        # license counters, which SoftEther 5.01 leaves at 0 (vpncmd then hides them)
        "NumSessionsClient_u32": 0,
        "NumSessionsBridge_u32": 0,
        "NumAccessLists_u32": 0,
        "NumUsers_u32": len(hub.users),
        "NumGroups_u32": 0,
        "NumMacTables_u32": (run.mac_table_size() if run else 0) + macs,
        "NumIpTables_u32": (run.ip_table_size() if run else 0) + ips,
        "SecureNATEnabled_bool": False,
        "LastCommTime_dt": dt(hub.created_time),
        "LastLoginTime_dt": dt(hub.created_time),
        "CreatedTime_dt": dt(hub.created_time),
        "NumLogin_u32": 0,
        **traffic(run.traffic() if run else None),
    }


@admin_method("DeleteHub", Scope.SERVER)
def delete_hub(ctx: AdminContext, p: Params) -> dict[str, Any]:
    refuse_on_member(ctx)
    name = p.str("HubName")

    def apply(config: model.Server) -> None:
        config.hubs.remove(existing_hub(config, name))
    ctx.server.state.change(apply)
    return {"HubName_str": name}


@admin_method("SetHubOnline", Scope.HUB)
def set_hub_online(ctx: AdminContext, p: Params) -> dict[str, Any]:
    """SoftEther has one method for both directions: Online_bool says which."""
    refuse_on_member(ctx)
    name, online = p.str("HubName"), p.bool("Online")

    def apply(config: model.Server) -> None:
        existing_hub(config, name).online = online
    ctx.server.state.change(apply)
    return {"HubName_str": name, "Online_bool": online}
