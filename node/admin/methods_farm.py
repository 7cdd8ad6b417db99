"""Cluster admin methods on the controller side: SetFarmSetting,
GetFarmSetting, EnumFarmMember, GetFarmInfo (Admin.c StSetFarmSetting and
friends; fields as softether-protocol.md §8.3).

SetFarmSetting changes the mode at run time instead of rebooting the
server as SoftEther does (CLUSTER.md decision 7): validate; back up the
config first ("mode-change"); change `config.farm` and convert hubs
(→ controller: type 0 hubs become dynamic; → standalone: every hub becomes
type 0, and a former member drops the controller's hubs; → member: the
hubs are replaced by the controller's push); then switch the cluster role
in a task. Unlike SoftEther, an incomplete member setting is refused with
ERR_INVALID_PARAMETER naming the field (SoftEther ignores it silently).
GetFarmSetting never reveals the member password (zeros / empty).

EnumFarmMember / GetFarmInfo carry SoftEther's fields plus one of ours,
`EndpointError_str`: why the member gets no sessions for its public
endpoint ("endpoint not verified", "endpoint failed: <reason>"; empty when
it is verified, and for the controller). SoftEther clients ignore fields
they do not know. They also carry `DrainState_str` ("draining", "drained",
or empty), and GetFarmInfo the drain's rate and sessions moved.

ClusterMemberDrain {Id_u32, Rate_u32} and ClusterMemberUndrain {Id_u32}
are ours (SoftEther has no drain): the order is saved in the configuration
(`farm.drains`, by the member's bus key), so it survives a restart of the
controller or of the member; the controller core carries it out
(controller/drain.py). Rate_u32 is sessions moved per second (0: 5, at most
1000). The controller's own entry cannot be drained (ERR_INVALID_PARAMETER);
an id the controller does not know is ERR_OBJECT_NOT_FOUND.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from controller.drain import DEFAULT_RATE, MAX_RATE
from controller.errors import MemberUnknown
from controller.points import DEFAULT_WEIGHT
from controller.registry import ME_ID, Member
from node.admin.dispatch import AdminContext, Scope, admin_method
from node.admin.jsonrpc import RpcError
from node.admin.jsonvalue import Params, b64, dt, ip
from node.cluster.controller_role import ControllerRole
from node.cluster.member_role import forget_controller_pin
from node.softether.errors import Err
from node.softether.sha0 import hash_admin_password
from node.state import model

log = logging.getLogger("vpnd.cluster")

MAX_PUBLIC_PORTS = 128
MODE_NAMES = {model.SERVER_STANDALONE: "standalone", model.SERVER_CONTROLLER: "cluster controller",
              model.SERVER_MEMBER: "cluster member"}


def _member_password(p: Params) -> bytes:
    binary = p.bin("MemberPassword")
    if any(binary):
        if len(binary) != 20:
            raise RpcError(Err.INVALID_PARAMETER, "MemberPassword_bin must be SHA0(password), 20 bytes")
        return binary
    if p.has("MemberPasswordPlaintext", "_str"):
        return hash_admin_password(p.str("MemberPasswordPlaintext"))
    raise RpcError(Err.INVALID_PARAMETER,
                   "member mode needs MemberPasswordPlaintext_str or MemberPassword_bin (the controller's password)")


def _ports(p: Params) -> list[int]:
    ports = p.u32_list("Ports")
    if not 1 <= len(ports) <= MAX_PUBLIC_PORTS:
        raise RpcError(Err.INVALID_PARAMETER, f"Ports_u32 needs 1..{MAX_PUBLIC_PORTS} public ports, got {len(ports)}")
    if any(not 1 <= port <= 65535 for port in ports) or len(set(ports)) != len(ports):
        raise RpcError(Err.INVALID_PARAMETER, "Ports_u32: ports must be distinct values in 1..65535")
    return ports


def _farm_from(p: Params, old: model.Farm) -> model.Farm:
    server_type = p.u32("ServerType")
    if server_type not in MODE_NAMES:
        raise RpcError(Err.INVALID_PARAMETER, f"ServerType_u32 {server_type}: expected 0, 1 or 2")
    farm = model.Farm(server_type=server_type, weight=p.u32("Weight") or DEFAULT_WEIGHT,
                      controller_only=p.bool("ControllerOnly"), bus_port=old.bus_port,
                      drains=list(old.drains) if server_type == old.server_type == model.SERVER_CONTROLLER else [])
    if server_type != model.SERVER_MEMBER:
        return farm
    farm.controller_host = p.str("ControllerName").strip()
    if not farm.controller_host or len(farm.controller_host) > 255:
        raise RpcError(Err.INVALID_PARAMETER, "ControllerName_str: the controller's host name or address is missing")
    farm.controller_port = p.u32("ControllerPort")
    if not 1 <= farm.controller_port <= 65535:
        raise RpcError(Err.INVALID_PARAMETER, "ControllerPort_u32 must be in 1..65535")
    farm.member_password_hash = _member_password(p)
    public_ip = p.ip("PublicIp")
    if ipaddress.ip_address(public_ip).version != 4:
        raise RpcError(Err.INVALID_PARAMETER, "PublicIp_ip must be an IPv4 address (0.0.0.0 = automatic)")
    farm.public_ip = "" if public_ip == "0.0.0.0" else public_ip
    farm.public_ports = _ports(p)
    farm.controller_only = False
    return farm


def convert_hubs(config: model.Server, new_type: int) -> None:
    """Hub types for the new mode, as SoftEther converts them."""
    old_type = config.farm.server_type
    if new_type == old_type:
        return
    if new_type == model.SERVER_CONTROLLER:
        for hub in config.hubs:
            if hub.hub_type == model.HUB_STANDALONE:
                hub.hub_type = model.HUB_DYNAMIC
    elif new_type == model.SERVER_MEMBER or old_type == model.SERVER_MEMBER:
        # A member's hubs are the controller's: the push replaces them; a
        # member leaving the cluster drops them (the backup keeps both).
        # Local bridges stay: one names a hub by name and waits for it.
        config.hubs = []
    else:
        for hub in config.hubs:
            hub.hub_type = model.HUB_STANDALONE


def farm_setting(farm: model.Farm) -> dict[str, Any]:
    member = farm.server_type == model.SERVER_MEMBER
    return {
        "ServerType_u32": farm.server_type,
        "Weight_u32": farm.weight or DEFAULT_WEIGHT,
        "ControllerOnly_bool": farm.controller_only,
        "MemberPassword_bin": b64(bytes(20)),
        "MemberPasswordPlaintext_str": "",
        "NumPort_u32": len(farm.public_ports) if member else 0,
        "Ports_u32": list(farm.public_ports) if member else [],
        "PublicIp_ip": ip(farm.public_ip) if member else "0.0.0.0",
        "ControllerName_str": farm.controller_host if member else "",
        "ControllerPort_u32": farm.controller_port if member else 0,
    }


@admin_method("SetFarmSetting", Scope.SERVER)
def set_farm_setting(ctx: AdminContext, p: Params) -> dict[str, Any]:
    server = ctx.server
    old = server.state.config.farm
    farm = _farm_from(p, old)
    backup = server.state.backup("mode-change")

    def apply(config: model.Server) -> None:
        convert_hubs(config, farm.server_type)
        config.farm = farm
    server.state.change(apply)
    log.info("cluster mode %s → %s (weight %d%s); config backed up to %s", MODE_NAMES[old.server_type],
             MODE_NAMES[farm.server_type], farm.weight, ", controller functions only" if farm.controller_only else "",
             backup)
    if farm.server_type != model.SERVER_STANDALONE:
        log.info("no cascade or SecureNAT configuration to delete")
    if farm.server_type == model.SERVER_MEMBER:
        # A new member setting means a new join: trust whichever controller answers it.
        forget_controller_pin(server.state_dir)
    server.cluster.request_switch()
    return farm_setting(farm)


@admin_method("GetFarmSetting", Scope.SERVER)
def get_farm_setting(ctx: AdminContext, p: Params) -> dict[str, Any]:
    return farm_setting(ctx.server.state.config.farm)


def _controller_role(ctx: AdminContext) -> ControllerRole:
    if ctx.server.state.config.farm.server_type != model.SERVER_CONTROLLER:
        raise RpcError(Err.NOT_FARM_CONTROLLER, f"this server is {MODE_NAMES[ctx.server.state.config.farm.server_type]}")
    role = ctx.server.cluster.controller
    if role is None:
        raise RpcError(Err.NOT_FARM_CONTROLLER, "the cluster controller role is not running (starting or failed)")
    return role


def _member_row(role: ControllerRole, m: Member) -> dict[str, Any]:
    return {
        "Id_u32": m.member_id,
        "Controller_bool": m.is_me,
        "ConnectedTime_dt": dt(role.wall_time(m.connected_at)),
        "Ip_ip": "127.0.0.1" if m.is_me else ip(m.public_ip),
        "Hostname_str": m.hostname,
        "Point_u32": m.points,
        "NumSessions_u32": m.sessions,
        "NumTcpConnections_u32": m.tcp_connections,
        "NumHubs_u32": len(m.hubs),
        "AssignedClientLicense_u32": 0,
        "AssignedBridgeLicense_u32": 0,
        "EndpointError_str": m.endpoint_problem() or "",
        "DrainState_str": _drain_state(role, m),
    }


def _drain_state(role: ControllerRole, m: Member) -> str:
    view = None if m.is_me else role.drain_view(m.member_id)
    return "" if view is None else view.state.value


@admin_method("EnumFarmMember", Scope.SERVER)
def enum_farm_member(ctx: AdminContext, p: Params) -> dict[str, Any]:
    role = _controller_role(ctx)
    rows = [_member_row(role, m) for m in role.listed_members()]
    return {"NumFarm_u32": len(rows), "FarmMemberList": rows}


@admin_method("GetFarmInfo", Scope.SERVER)
def get_farm_info(ctx: AdminContext, p: Params) -> dict[str, Any]:
    role = _controller_role(ctx)
    wanted = p.u32("Id")
    m = next((m for m in role.listed_members() if m.member_id == wanted), None)
    if m is None:
        raise RpcError(Err.OBJECT_NOT_FOUND, f"no cluster member with id {wanted}")
    row = _member_row(role, m)
    return {
        **row,
        "Ports_u32": list(m.public_ports),
        "NumPort_u32": len(m.public_ports),
        "ServerCert_bin": b64(m.server_cert),
        "HubsList": [{"HubName_str": h.name, "DynamicHub_bool": h.dynamic} for h in m.hubs.values()],
        "NumFarmHub_u32": len(m.hubs),
        "Weight_u32": m.weight or DEFAULT_WEIGHT,
        **_drain_fields(role, m.member_id),
    }


def _drain_fields(role: ControllerRole, member_id: int) -> dict[str, Any]:
    view = None if member_id == ME_ID else role.drain_view(member_id)
    return {"DrainState_str": "" if view is None else view.state.value,
            "DrainRate_u32": 0 if view is None else round(view.rate),
            "DrainMoved_u32": 0 if view is None else view.moved}


def _drained_key(role: ControllerRole, p: Params) -> tuple[int, bytes]:
    member_id = p.u32("Id")
    if member_id == ME_ID:
        raise RpcError(Err.INVALID_PARAMETER, "the controller itself cannot be drained (only its members)")
    try:
        return member_id, role.core.member_key(member_id)
    except MemberUnknown:
        raise RpcError(Err.OBJECT_NOT_FOUND, f"no cluster member with id {member_id}") from None


@admin_method("ClusterMemberDrain", Scope.SERVER)
def cluster_member_drain(ctx: AdminContext, p: Params) -> dict[str, Any]:
    role = _controller_role(ctx)
    member_id, key = _drained_key(role, p)
    rate = p.u32("Rate") or int(DEFAULT_RATE)
    if rate > MAX_RATE:
        raise RpcError(Err.INVALID_PARAMETER, f"Rate_u32 {rate}: at most {MAX_RATE:g} sessions per second")

    def order(config: model.Server) -> None:
        config.farm.drains = [d for d in config.farm.drains if d.member_key != key] \
            + [model.Drain(member_key=key, rate=rate)]
    ctx.server.state.change(order)
    return {"Id_u32": member_id, **_drain_fields(role, member_id)}


@admin_method("ClusterMemberUndrain", Scope.SERVER)
def cluster_member_undrain(ctx: AdminContext, p: Params) -> dict[str, Any]:
    role = _controller_role(ctx)
    member_id, key = _drained_key(role, p)
    if any(d.member_key == key for d in ctx.server.state.config.farm.drains):
        def withdraw(config: model.Server) -> None:
            config.farm.drains = [d for d in config.farm.drains if d.member_key != key]
        ctx.server.state.change(withdraw)
    return {"Id_u32": member_id, **_drain_fields(role, member_id)}
