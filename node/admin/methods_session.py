"""Session and table admin methods: EnumSession, GetSessionStatus,
DeleteSession, EnumMacTable, EnumIpTable, DeleteMacTable, DeleteIpTable
(Admin.c StEnumSession and friends; field names of OutRpcEnumSession,
OutRpcSessionStatus, OutRpcEnumMacTable, OutRpcEnumIpTable).

Rules kept from SoftEther: a hub unknown to the config answers
ERR_HUB_NOT_FOUND; a configured hub without an instance here (offline)
has no sessions and empty tables; an unknown session or table key answers
ERR_OBJECT_NOT_FOUND; a local bridge is listed as a session (BridgeMode,
user "Local Bridge") and cannot be disconnected (ERR_BRIDGE_CANT_DISCONNECT).
A session's byte totals and traffic are shown from the client's side, as
SoftEther's server session counts them (Send = what the client sent into
the hub; checked against SoftEther 5.01 with a local bridge session).
Switch times are monotonic; they are converted to wall-clock here.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from node.admin.dispatch import AdminContext, Scope, admin_method
from node.admin.fields import traffic
from node.admin.jsonrpc import RpcError
from node.admin.jsonvalue import Params, b64, dt, ip
from node.admin.methods_hub import existing_hub
from node.dataplane.hubs import BridgeSession, RunningHub, traffic_dict
from node.dataplane.session import VpnSession
from node.dataplane.switch import IpTableItem, MacTableItem, Traffic
from node.server import COMPAT_BUILD, COMPAT_VERSION, PRODUCT_NAME
from node.softether.errors import Err

log = logging.getLogger("vpnd.admin")

BRIDGE_USER_PRINT = "Local Bridge"          # SoftEther's BRIDGE_USER_NAME_PRINT
CLIENT_STATUS_ESTABLISHED = 3
UNDERLAY_TCP_V4, UNDERLAY_TCP_V6 = "Standard TCP/IP (IPv4)", "Standard TCP/IP (IPv6)"
DISCONNECT_REASON = "disconnected by the administrator"


def _instance(ctx: AdminContext, hub_name: str) -> tuple[str, RunningHub | None]:
    """(configured hub name, its running hub here or None). Raises ERR_HUB_NOT_FOUND."""
    hub = existing_hub(ctx.server.state.config, hub_name)
    return hub.name, ctx.server.running_hub(hub.name)


def _is_v6(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).version == 6
    except ValueError:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class _View:
    """One session as the listings show it: a VPN session or a bridge session.
    Byte totals and traffic are the client's view (SoftEther's server session
    counts what the client sent as Send, what it received as Recv)."""

    name: str
    connection_name: str
    username: str
    real_username: str
    client_ip: str
    client_port: int
    client_hostname: str
    client_product: str
    client_version: int
    client_build: int
    created_time: float
    last_comm_time: float
    tcp_connections: int
    max_tcp_connections: int
    use_encrypt: bool
    use_compress: bool
    session_key: bytes
    unique_id: bytes
    sent_bytes: int
    received_bytes: int
    traffic: dict[str, int]
    bridge: bool


def _client_traffic(t: Traffic | None) -> dict[str, int]:
    """The switch counts from the hub's side; the session shows the client's."""
    if t is None:
        return {}
    return {("Send." if k.startswith("Recv.") else "Recv.") + k.split(".", 1)[1]: v
            for k, v in traffic_dict(t).items()}


def _vpn_view(instance: RunningHub, s: VpnSession) -> _View:
    return _View(
        name=s.name, connection_name=s.connection_name, username=s.username, real_username=s.username,
        client_ip=s.client_ip,
        client_port=int(s.client_port), client_hostname=s.client_hostname,
        client_product=s.client_product, client_version=int(s.client_version),
        client_build=int(s.client_build), created_time=s.created_time, last_comm_time=s.last_comm_time,
        tcp_connections=int(s.tcp_connections), max_tcp_connections=int(s.max_tcp_connections),
        use_encrypt=bool(s.use_encrypt), use_compress=bool(s.use_compress),
        session_key=bytes(s.session_key), unique_id=bytes(s.unique_id),
        # the session counts from the server's side: what it received, the client sent
        sent_bytes=int(s.total_recv_bytes), received_bytes=int(s.total_send_bytes),
        traffic=_client_traffic(instance.port_traffic(s)), bridge=False)


def _bridge_view(instance: RunningHub, b: BridgeSession) -> _View:
    t = instance.port_traffic(b.port) if b.port is not None else None
    return _View(
        name=b.name, connection_name=b.name, username=BRIDGE_USER_PRINT, real_username="", client_ip="0.0.0.0", client_port=0,
        client_hostname="", client_product="", client_version=0, client_build=0,
        created_time=b.created_time, last_comm_time=b.created_time, tcp_connections=0,
        max_tcp_connections=0, use_encrypt=False, use_compress=False, session_key=b.session_key,
        unique_id=b"", sent_bytes=0, received_bytes=0, traffic=_client_traffic(t), bridge=True)


def _views(instance: RunningHub | None) -> list[_View]:
    if instance is None:
        return []
    return ([_bridge_view(instance, b) for b in list(instance.bridges.values())]
            + [_vpn_view(instance, s) for s in list(instance.sessions.values())])


def _session_row(ctx: AdminContext, v: _View) -> dict[str, Any]:
    return {
        "Name_str": v.name,
        "Username_str": v.username,
        "Ip_ip": "0.0.0.0" if _is_v6(v.client_ip) else ip(v.client_ip),
        "ClientIP_ip": ip(v.client_ip),
        "Hostname_str": v.client_hostname,
        "MaxNumTcp_u32": v.max_tcp_connections,
        "CurrentNumTcp_u32": v.tcp_connections,
        # GetTrafficPacketSize/Num: everything, both ways
        "PacketSize_u64": sum(n for k, n in v.traffic.items() if k.endswith("Bytes")),
        "PacketNum_u64": sum(n for k, n in v.traffic.items() if k.endswith("Count")),
        "RemoteSession_bool": False,
        "RemoteHostname_str": ctx.server.hostname,
        "LinkMode_bool": False,
        "SecureNATMode_bool": False,
        "BridgeMode_bool": v.bridge,
        "Layer3Mode_bool": False,
        "Client_BridgeMode_bool": v.bridge,
        "Client_MonitorMode_bool": False,
        "VLanId_u32": 0,
        "UniqueId_bin": b64(_unique_id(v.unique_id)),
        "IsDormantEnabled_bool": False,
        "IsDormant_bool": False,
        "LastCommDormant_dt": dt(0),
        "CreatedTime_dt": dt(v.created_time),
        "LastCommTime_dt": dt(v.last_comm_time),
    }


def _unique_id(raw: bytes) -> bytes:
    # NODE_INFO.UniqueId is 16 bytes; a client that sent none shows zeros
    return raw[:16].ljust(16, b"\0")


@admin_method("EnumSession", Scope.HUB)
def enum_session(ctx: AdminContext, p: Params) -> dict[str, Any]:
    name, instance = _instance(ctx, p.str("HubName"))
    return {"HubName_str": name, "SessionList": [_session_row(ctx, v) for v in _views(instance)]}


def _need_name(p: Params) -> str:
    name = p.str("Name")
    if not name:
        raise RpcError(Err.INVALID_PARAMETER, "Name_str is empty")
    return name


def _find_bridge(instance: RunningHub, name: str) -> BridgeSession | None:
    key = name.lower()
    return next((b for b in instance.bridges.values() if b.name.lower() == key), None)


def _find_view(ctx: AdminContext, p: Params) -> tuple[str, _View]:
    session_name = _need_name(p)
    hub_name, instance = _instance(ctx, p.str("HubName"))
    if instance is not None:
        s = instance.find_session(session_name)
        if s is not None:
            return hub_name, _vpn_view(instance, s)
        b = _find_bridge(instance, session_name)
        if b is not None:
            return hub_name, _bridge_view(instance, b)
    raise RpcError(Err.OBJECT_NOT_FOUND, f"no session {session_name!r} on hub {hub_name!r}")


@admin_method("GetSessionStatus", Scope.HUB)
def get_session_status(ctx: AdminContext, p: Params) -> dict[str, Any]:
    hub_name, v = _find_view(ctx, p)
    v6 = _is_v6(v.client_ip)
    server = ctx.server
    return {
        "HubName_str": hub_name,
        "Name_str": v.name,
        "Username_str": v.username,
        "GroupName_str": "",
        "RealUsername_str": v.real_username,
        "SessionStatus_ClientIp_ip": "0.0.0.0" if v6 else ip(v.client_ip),
        "SessionStatus_ClientIp6_bin": b64(ipaddress.ip_address(v.client_ip).packed if v6 else bytes(16)),
        "SessionStatus_ClientHostName_str": v.client_hostname,
        "Client_Ip_Address_ip": ip(v.client_ip),
        # connection status (OutRpcClientGetConnectionStatus)
        "AccountName_utf": "",
        "ServerName_str": "" if v.bridge else server.hostname,
        "ServerProductName_str": PRODUCT_NAME,
        "ProtocolVersion_str": "",
        "CipherName_str": "",
        "SessionName_str": v.name,
        "ConnectionName_str": v.connection_name,   # the connection's "CID-n", as Connection->Name
        "SessionKey_bin": b64(v.session_key),
        "Active_bool": True,
        "Connected_bool": True,
        "SessionStatus_u32": CLIENT_STATUS_ESTABLISHED,
        "ServerPort_u32": 0,
        "ServerProductVer_u32": COMPAT_VERSION,
        "ServerProductBuild_u32": COMPAT_BUILD,
        "NumConnectionsEstablished_u32": 1,
        "HalfConnection_bool": False,
        "QoS_bool": False,
        "MaxTcpConnections_u32": v.max_tcp_connections,
        "NumTcpConnections_u32": v.tcp_connections,
        "NumTcpConnectionsUpload_u32": 0,
        "NumTcpConnectionsDownload_u32": 0,
        "UseEncrypt_bool": v.use_encrypt,
        "UseCompress_bool": v.use_compress,
        "IsRUDPSession_bool": False,
        "UnderlayProtocol_str": "" if v.bridge else UNDERLAY_TCP_V6 if v6 else UNDERLAY_TCP_V4,
        "ProtocolDetails_str": "",
        "IsUdpAccelerationEnabled_bool": False,
        "IsUsingUdpAcceleration_bool": False,
        "IsBridgeMode_bool": v.bridge,
        "IsMonitorMode_bool": False,
        "StartTime_dt": dt(v.created_time),
        "FirstConnectionEstablisiedTime_dt": dt(v.created_time),
        "CurrentConnectionEstablishTime_dt": dt(v.created_time),
        "TotalSendSize_u64": v.sent_bytes,
        "TotalRecvSize_u64": v.received_bytes,
        "TotalSendSizeReal_u64": v.sent_bytes,
        "TotalRecvSizeReal_u64": v.received_bytes,
        "VLanId_u32": 0,
        **traffic(v.traffic),
        # node info (OutRpcNodeInfo)
        "ClientProductName_str": v.client_product,
        "ClientOsName_str": "",
        "ClientOsVer_str": "",
        "ClientOsProductId_str": "",
        "ClientHostname_str": v.client_hostname,
        "ServerHostname_str": "" if v.bridge else server.hostname,
        "ProxyHostname_str": "",
        "UniqueId_bin": b64(_unique_id(v.unique_id)),
        "ClientProductVer_u32": v.client_version,
        "ClientProductBuild_u32": v.client_build,
        "ClientIpAddress_ip": "0.0.0.0" if v6 else ip(v.client_ip),
        "ClientIpAddress6_bin": b64(bytes(16)),
        "ClientPort_u32": v.client_port,
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
    if instance is None or s is None:
        raise RpcError(Err.OBJECT_NOT_FOUND, f"no session {session_name!r} on hub {hub_name!r}")
    log.info("admin %s disconnects session %s of hub %s", ctx.peer, s.name, hub_name)
    # the admin call answers at once; the session ends on its own task, as StopSession
    instance.disconnect(s, DISCONNECT_REASON)
    return {"HubName_str": hub_name, "Name_str": s.name}


def _mac_row(ctx: AdminContext, instance: RunningHub, e: MacTableItem) -> dict[str, Any]:
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


def _ip_row(ctx: AdminContext, instance: RunningHub, e: IpTableItem) -> dict[str, Any]:
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
