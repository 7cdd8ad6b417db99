"""Session and table admin methods: EnumSession, GetSessionStatus,
DeleteSession, EnumMacTable, EnumIpTable, DeleteMacTable, DeleteIpTable
(Admin.c StEnumSession and friends; field names of OutRpcEnumSession,
OutRpcSessionStatus, OutRpcEnumMacTable, OutRpcEnumIpTable).

Rules kept from SoftEther: a hub unknown to the config answers
ERR_HUB_NOT_FOUND; a configured hub without an instance here (offline)
has no sessions and empty tables; an unknown session or table key answers
ERR_OBJECT_NOT_FOUND; a local bridge is listed as a session (BridgeMode,
user "Local Bridge") and cannot be disconnected (ERR_BRIDGE_CANT_DISCONNECT).
Session byte totals are shown from the client's side, as SoftEther's
CiGetSessionStatus does for a server session (sent = what the server got).
Switch times are monotonic; they are converted to wall-clock here.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from node.admin.dispatch import AdminContext, Scope, admin_method
from node.admin.fields import traffic
from node.admin.jsonrpc import RpcError
from node.admin.jsonvalue import Params, b64, dt, ip
from node.admin.methods_hub import existing_hub
from node.dataplane.hubs import BridgeSession, HubInstance, traffic_dict
from node.server import COMPAT_BUILD, COMPAT_VERSION, PRODUCT_NAME
from node.softether.errors import Err

log = logging.getLogger("vpnd.admin")

BRIDGE_USER_PRINT = "Local Bridge"          # SoftEther's BRIDGE_USER_NAME_PRINT
CLIENT_STATUS_ESTABLISHED = 3
UNDERLAY_TCP_V4, UNDERLAY_TCP_V6 = "Standard TCP/IP (IPv4)", "Standard TCP/IP (IPv6)"
DISCONNECT_REASON = "disconnected by the administrator"


def _instance(ctx: AdminContext, hub_name: str) -> tuple[str, HubInstance | None]:
    """(configured hub name, its instance here or None). Raises ERR_HUB_NOT_FOUND."""
    hub = existing_hub(ctx.server.state.config, hub_name)
    found = ctx.server.hub_runtime(hub.name)
    return hub.name, found if isinstance(found, HubInstance) else None


def _totals(counters: dict[str, int]) -> tuple[int, int]:
    """(bytes, packets) of a TRAFFIC, as GetTrafficPacketSize/Num add them."""
    size = sum(v for k, v in counters.items() if k.endswith("Bytes"))
    num = sum(v for k, v in counters.items() if k.endswith("Count"))
    return size, num


def _is_v6(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).version == 6
    except ValueError:
        return False


def _unique_id(s: Any) -> bytes:
    # NODE_INFO.UniqueId is 16 bytes; a client that sent none shows zeros
    return bytes(s.unique_id)[:16].ljust(16, b"\0")


def _session_row(ctx: AdminContext, instance: HubInstance, s: Any) -> dict[str, Any]:
    counters = traffic_dict(t) if (t := instance.port_traffic(s)) is not None else {}
    size, num = _totals(counters)
    return {
        "Name_str": s.name,
        "Username_str": s.username,
        "Ip_ip": ip(s.client_ip) if not _is_v6(s.client_ip) else "0.0.0.0",
        "ClientIP_ip": ip(s.client_ip),
        "Hostname_str": s.client_hostname,
        "MaxNumTcp_u32": int(s.max_tcp_connections),
        "CurrentNumTcp_u32": int(s.tcp_connections),
        "PacketSize_u64": size,
        "PacketNum_u64": num,
        "RemoteSession_bool": False,
        "RemoteHostname_str": ctx.server.hostname,
        "LinkMode_bool": False,
        "SecureNATMode_bool": False,
        "BridgeMode_bool": False,
        "Layer3Mode_bool": False,
        "Client_BridgeMode_bool": False,
        "Client_MonitorMode_bool": False,
        "VLanId_u32": 0,
        "UniqueId_bin": b64(_unique_id(s)),
        "IsDormantEnabled_bool": False,
        "IsDormant_bool": False,
        "LastCommDormant_dt": dt(0),
        "CreatedTime_dt": dt(s.created_time),
        "LastCommTime_dt": dt(s.last_comm_time),
    }


def _bridge_row(ctx: AdminContext, instance: HubInstance, b: BridgeSession) -> dict[str, Any]:
    t = instance.port_traffic(b.port) if b.port is not None else None
    counters = traffic_dict(t) if t is not None else {}
    size, num = _totals(counters)
    return {
        "Name_str": b.name, "Username_str": BRIDGE_USER_PRINT, "Ip_ip": "0.0.0.0",
        "ClientIP_ip": "0.0.0.0", "Hostname_str": "", "MaxNumTcp_u32": 0, "CurrentNumTcp_u32": 0,
        "PacketSize_u64": size, "PacketNum_u64": num, "RemoteSession_bool": False,
        "RemoteHostname_str": ctx.server.hostname, "LinkMode_bool": False,
        "SecureNATMode_bool": False, "BridgeMode_bool": True, "Layer3Mode_bool": False,
        "Client_BridgeMode_bool": False, "Client_MonitorMode_bool": False, "VLanId_u32": 0,
        "UniqueId_bin": b64(bytes(16)), "IsDormantEnabled_bool": False, "IsDormant_bool": False,
        "LastCommDormant_dt": dt(0), "CreatedTime_dt": dt(b.created_time),
        "LastCommTime_dt": dt(b.created_time),
    }


@admin_method("EnumSession", Scope.HUB)
def enum_session(ctx: AdminContext, p: Params) -> dict[str, Any]:
    name, instance = _instance(ctx, p.str("HubName"))
    rows: list[dict[str, Any]] = []
    if instance is not None:
        rows += [_session_row(ctx, instance, s) for s in list(instance.sessions.values())]
        rows += [_bridge_row(ctx, instance, b) for b in list(instance.bridges.values())]
    return {"HubName_str": name, "SessionList": rows}


def _need_name(p: Params) -> str:
    name = p.str("Name")
    if not name:
        raise RpcError(Err.INVALID_PARAMETER, "Name_str is empty")
    return name


def _find_bridge(instance: HubInstance, name: str) -> BridgeSession | None:
    key = name.lower()
    return next((b for b in instance.bridges.values() if b.name.lower() == key), None)


@admin_method("GetSessionStatus", Scope.HUB)
def get_session_status(ctx: AdminContext, p: Params) -> dict[str, Any]:
    session_name = _need_name(p)
    hub_name, instance = _instance(ctx, p.str("HubName"))
    s = instance.find_session(session_name) if instance is not None else None
    if s is None:
        raise RpcError(Err.OBJECT_NOT_FOUND, f"no session {session_name!r} on hub {hub_name!r}")
    counters = traffic_dict(t) if (t := instance.port_traffic(s)) is not None else None
    v6 = _is_v6(s.client_ip)
    sent_by_client, got_by_client = int(s.total_recv_bytes), int(s.total_send_bytes)
    server = ctx.server
    return {
        "HubName_str": hub_name,
        "Name_str": s.name,
        "Username_str": s.username,
        "GroupName_str": "",
        "RealUsername_str": s.username,
        "SessionStatus_ClientIp_ip": "0.0.0.0" if v6 else ip(s.client_ip),
        "SessionStatus_ClientIp6_bin": b64(ipaddress.ip_address(s.client_ip).packed if v6 else bytes(16)),
        "SessionStatus_ClientHostName_str": s.client_hostname,
        "Client_Ip_Address_ip": ip(s.client_ip),
        # connection status (OutRpcClientGetConnectionStatus)
        "AccountName_utf": "",
        "ServerName_str": server.hostname,
        "ServerProductName_str": PRODUCT_NAME,
        "ProtocolVersion_str": "",
        "CipherName_str": "",
        "SessionName_str": s.name,
        "ConnectionName_str": s.name,
        "SessionKey_bin": b64(bytes(s.session_key)),
        "Active_bool": True,
        "Connected_bool": True,
        "SessionStatus_u32": CLIENT_STATUS_ESTABLISHED,
        "ServerPort_u32": 0,
        "ServerProductVer_u32": COMPAT_VERSION,
        "ServerProductBuild_u32": COMPAT_BUILD,
        "NumConnectionsEstablished_u32": 1,
        "HalfConnection_bool": False,
        "QoS_bool": False,
        "MaxTcpConnections_u32": int(s.max_tcp_connections),
        "NumTcpConnections_u32": int(s.tcp_connections),
        "NumTcpConnectionsUpload_u32": 0,
        "NumTcpConnectionsDownload_u32": 0,
        "UseEncrypt_bool": bool(s.use_encrypt),
        "UseCompress_bool": bool(s.use_compress),
        "IsRUDPSession_bool": False,
        "UnderlayProtocol_str": UNDERLAY_TCP_V6 if v6 else UNDERLAY_TCP_V4,
        "ProtocolDetails_str": "",
        "IsUdpAccelerationEnabled_bool": False,
        "IsUsingUdpAcceleration_bool": False,
        "IsBridgeMode_bool": False,
        "IsMonitorMode_bool": False,
        "StartTime_dt": dt(s.created_time),
        "FirstConnectionEstablisiedTime_dt": dt(s.created_time),
        "CurrentConnectionEstablishTime_dt": dt(s.created_time),
        "TotalSendSize_u64": sent_by_client,
        "TotalRecvSize_u64": got_by_client,
        "TotalSendSizeReal_u64": sent_by_client,
        "TotalRecvSizeReal_u64": got_by_client,
        "VLanId_u32": 0,
        **traffic(counters),
        # node info (OutRpcNodeInfo)
        "ClientProductName_str": s.client_product,
        "ClientOsName_str": "",
        "ClientOsVer_str": "",
        "ClientOsProductId_str": "",
        "ClientHostname_str": s.client_hostname,
        "ServerHostname_str": server.hostname,
        "ProxyHostname_str": "",
        "UniqueId_bin": b64(_unique_id(s)),
        "ClientProductVer_u32": int(s.client_version),
        "ClientProductBuild_u32": int(s.client_build),
        "ClientIpAddress_ip": "0.0.0.0" if v6 else ip(s.client_ip),
        "ClientIpAddress6_bin": b64(bytes(16)),
        "ClientPort_u32": int(s.client_port),
        "ServerIpAddress_ip": "0.0.0.0",
        "ServerIpAddress6_bin": b64(bytes(16)),
        "ServerPort2_u32": 0,
        "ProxyIpAddress_ip": "0.0.0.0",
        "ProxyIpAddress6_bin": b64(bytes(16)),
        "ProxyPort_u32": 0,
    }


@admin_method("DeleteSession", Scope.HUB)
def delete_session(ctx: AdminContext, p: Params) -> dict[str, Any]:
    session_name = _need_name(p)
    hub_name, instance = _instance(ctx, p.str("HubName"))
    if instance is not None and _find_bridge(instance, session_name) is not None:
        raise RpcError(Err.BRIDGE_CANT_DISCONNECT, f"{session_name} is a local bridge (use DeleteLocalBridge)")
    s = instance.find_session(session_name) if instance is not None else None
    if s is None:
        raise RpcError(Err.OBJECT_NOT_FOUND, f"no session {session_name!r} on hub {hub_name!r}")
    log.info("admin %s disconnects session %s of hub %s", ctx.peer, s.name, hub_name)
    # the admin call answers at once; the session ends on its own task, as StopSession
    instance.disconnect(s, DISCONNECT_REASON)
    return {"HubName_str": hub_name, "Name_str": s.name}


def _mac_row(ctx: AdminContext, instance: HubInstance, e: Any) -> dict[str, Any]:
    return {
        "Key_u32": e.key,
        "SessionName_str": e.session_name,
        "MacAddress_bin": b64(e.mac_address),
        "VlanId_u32": e.vlan_id,
        "CreatedTime_dt": dt(instance.wall(e.created_time)),
        "UpdatedTime_dt": dt(instance.wall(e.updated_time)),
        "RemoteItem_bool": False,
        "RemoteHostname_str": ctx.server.hostname,
    }


def _ip_row(ctx: AdminContext, instance: HubInstance, e: Any) -> dict[str, Any]:
    text = str(ipaddress.ip_address(bytes(e.ip_address)))
    return {
        "Key_u32": e.key,
        "SessionName_str": e.session_name,
        "Ip_ip": text,
        "IpV6_ip": text,
        "IpAddress_ip": text,
        "DhcpAllocated_bool": e.dhcp_allocated,
        "CreatedTime_dt": dt(instance.wall(e.created_time)),
        "UpdatedTime_dt": dt(instance.wall(e.updated_time)),
        "RemoteItem_bool": False,
        "RemoteHostname_str": ctx.server.hostname,
    }


@admin_method("EnumMacTable", Scope.HUB)
def enum_mac_table(ctx: AdminContext, p: Params) -> dict[str, Any]:
    name, instance = _instance(ctx, p.str("HubName"))
    rows = [_mac_row(ctx, instance, e) for e in instance.hub.mac_table()] if instance else []
    return {"HubName_str": name, "MacTable": rows}


@admin_method("EnumIpTable", Scope.HUB)
def enum_ip_table(ctx: AdminContext, p: Params) -> dict[str, Any]:
    name, instance = _instance(ctx, p.str("HubName"))
    rows = [_ip_row(ctx, instance, e) for e in instance.hub.ip_table()] if instance else []
    return {"HubName_str": name, "IpTable": rows}


def _delete_entry(ctx: AdminContext, p: Params, mac: bool) -> dict[str, Any]:
    name, instance = _instance(ctx, p.str("HubName"))
    key = p.u32("Key")
    switch = instance.hub.switch if instance else None
    if switch is None or not (switch.delete_mac(key) if mac else switch.delete_ip(key)):
        raise RpcError(Err.OBJECT_NOT_FOUND, f"no {'MAC' if mac else 'IP'} table entry {key} on hub {name!r}")
    return {"HubName_str": name, "Key_u32": key}


@admin_method("DeleteMacTable", Scope.HUB)
def delete_mac_table(ctx: AdminContext, p: Params) -> dict[str, Any]:
    return _delete_entry(ctx, p, mac=True)


@admin_method("DeleteIpTable", Scope.HUB)
def delete_ip_table(ctx: AdminContext, p: Params) -> dict[str, Any]:
    return _delete_entry(ctx, p, mac=False)
