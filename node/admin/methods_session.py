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
Switch times are monotonic; they are converted to wall-clock by
node/cluster/member_services.py, which builds every server's own rows.

On a running cluster controller every method covers the whole cluster
(CLUSTERING.md §3.9.10; Admin.c StEnumSession → SiEnumSessionMain and
friends): the controller's own rows (RemoteSession/RemoteItem false,
RemoteHostname its own host name, as SoftEther's SiEnumLocalSession), then
each member's, gathered concurrently with a deadline (node/admin/collective.py),
marked RemoteSession/RemoteItem true with the member's host name, as
SiCallEnumSession does. A member that did not answer is named under
`MissingServers` and the call still succeeds. GetSessionStatus,
DeleteSession, DeleteMacTable and DeleteIpTable look on the controller
first, then ask every member (SoftEther asks them by name/key, as here):
GetSessionStatus answers with the first member that has the session,
DeleteSession and the table deletes act on every member that has it. Unlike
SoftEther's controller, which answers success for a name or key no member
has, these answer ERR_OBJECT_NOT_FOUND then (naming any missing member in
the message). On a member, or standalone, they cover this server only.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, Callable, TypeVar

from controller.messages import (
    Ack, DeleteIpTable, DeleteMacTable, DeleteSession, EnumIpTable, EnumMacTable, EnumSessions,
    GetSessionStatus, IpRow, MacRow, SessionDetail, SessionRow,
)
from node.admin.collective import (
    MISSING_KEY, Answered, Missing, Refused, Server, ask_members, controller_of, note_missing,
)
from node.admin.dispatch import AdminContext, Scope, async_admin_method
from node.admin.fields import traffic
from node.admin.jsonrpc import RpcError
from node.admin.jsonvalue import Params, b64, dt, ip
from node.admin.methods_hub import existing_hub
from node.cluster import member_services as own
from node.server import COMPAT_BUILD, COMPAT_VERSION, PRODUCT_NAME
from node.softether.errors import Err
from vpnbus.endpoint import RequestFailed

log = logging.getLogger("vpnd.admin")

CLIENT_STATUS_ESTABLISHED = 3
UNDERLAY_TCP_V4, UNDERLAY_TCP_V6 = "Standard TCP/IP (IPv4)", "Standard TCP/IP (IPv6)"

T = TypeVar("T")


def _hub(ctx: AdminContext, p: Params) -> str:
    """The configured hub's name. Raises ERR_HUB_NOT_FOUND."""
    return existing_hub(ctx.server.state.config, p.str("HubName")).name


def _is_v6(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).version == 6
    except ValueError:
        return False


def _need_name(p: Params) -> str:
    name = p.str("Name")
    if not name:
        raise RpcError(Err.INVALID_PARAMETER, "Name_str is empty")
    return name


def _unique_id(raw: bytes) -> bytes:
    # NODE_INFO.UniqueId is 16 bytes; a client that sent none shows zeros
    return raw[:16].ljust(16, b"\0")


async def _from_members(ctx: AdminContext, method: str, hub: str, request: object,
                        reply_type: type[T]) -> tuple[list[tuple[Server, T]], list[Refused], list[dict[str, Any]]]:
    """On a controller, every member's answer: (replies, refusals, MissingServers entries).
    Elsewhere nothing. A reply of another type counts as missing."""
    role = controller_of(ctx.server)
    if role is None:
        return [], [], []
    replies: list[tuple[Server, T]] = []
    refusals: list[Refused] = []
    missing: list[Missing | Refused] = []
    for outcome in await ask_members(role, request):
        if isinstance(outcome, Answered):
            if isinstance(outcome.reply, reply_type):
                replies.append((outcome.server, outcome.reply))
            else:
                missing.append(Missing(outcome.server, f"unexpected reply {type(outcome.reply).__name__}"))
        elif isinstance(outcome, Refused) and outcome.code in (Err.OBJECT_NOT_FOUND, Err.BRIDGE_CANT_DISCONNECT):
            refusals.append(outcome)
        else:
            missing.append(outcome)
    return replies, refusals, note_missing(method, hub, missing)


def _with_missing(result: dict[str, Any], missing: list[dict[str, Any]]) -> dict[str, Any]:
    if missing:
        result[MISSING_KEY] = missing
    return result


def _not_found(what: str, hub: str, missing: list[dict[str, Any]]) -> RpcError:
    unknown = f" (no answer from {', '.join(m['Hostname'] for m in missing)})" if missing else ""
    return RpcError(Err.OBJECT_NOT_FOUND, f"no {what} on hub {hub!r}{unknown}")


async def _here_or_on_members(ctx: AdminContext, method: str, hub: str, request: object, reply_type: type[T],
                              what: str) -> tuple[str, T, list[dict[str, Any]]]:
    """(server host name, reply, MissingServers entries): this server's reply
    if it has the object, else (on a controller) the first member's that has it
    -- every member acts on the request, as each of SoftEther's does. Raises
    RpcError: a refusal other than "not found" (here or from a member), or
    ERR_OBJECT_NOT_FOUND when no server has it."""
    try:
        reply = own.serve(ctx.server, request)
    except RequestFailed as exc:
        if exc.code != Err.OBJECT_NOT_FOUND:
            raise RpcError(exc.code, exc.text) from None
    else:
        assert isinstance(reply, reply_type)
        return ctx.server.hostname, reply, []
    replies, refusals, missing = await _from_members(ctx, method, hub, request, reply_type)
    if replies:
        server, found = replies[0]
        return server.hostname, found, missing
    for refusal in refusals:
        if refusal.code != Err.OBJECT_NOT_FOUND:
            raise RpcError(refusal.code, refusal.text)
    raise _not_found(what, hub, missing)


# -- sessions -------------------------------------------------------------------

def _session_row(r: SessionRow, hostname: str, remote: bool) -> dict[str, Any]:
    return {
        "Name_str": r.name,
        "Username_str": r.username,
        "Ip_ip": "0.0.0.0" if _is_v6(r.client_ip) else ip(r.client_ip),
        "ClientIP_ip": ip(r.client_ip),
        "Hostname_str": r.client_hostname,
        "MaxNumTcp_u32": r.max_tcp_connections,
        "CurrentNumTcp_u32": r.tcp_connections,
        "PacketSize_u64": r.packet_bytes,
        "PacketNum_u64": r.packet_count,
        "RemoteSession_bool": remote,
        "RemoteHostname_str": hostname,
        "LinkMode_bool": False,
        "SecureNATMode_bool": False,
        "BridgeMode_bool": r.bridge,
        "Layer3Mode_bool": False,
        "Client_BridgeMode_bool": r.bridge,
        "Client_MonitorMode_bool": False,
        "VLanId_u32": 0,
        "UniqueId_bin": b64(_unique_id(r.unique_id)),
        "IsDormantEnabled_bool": False,
        "IsDormant_bool": False,
        "LastCommDormant_dt": dt(0),
        "CreatedTime_dt": dt(r.created_time),
        "LastCommTime_dt": dt(r.last_comm_time),
    }


@async_admin_method("EnumSession", Scope.HUB)
async def enum_session(ctx: AdminContext, p: Params) -> dict[str, Any]:
    return await _listing(ctx, p, "EnumSession", "SessionList", EnumSessions,
                          lambda reply: reply.sessions, _session_row)


async def _listing(ctx: AdminContext, p: Params, method: str, list_key: str, request_of: Callable[..., Any],
                   items_of: Callable[[Any], list[Any]], row: Callable[[Any, str, bool], dict[str, Any]]
                   ) -> dict[str, Any]:
    """This server's rows, then each member's (on a controller); `request_of(hub=...)`
    is the bus request, `items_of` its reply's items, `row` one item as JSON."""
    hub = _hub(ctx, p)
    request = request_of(hub=hub)
    reply = own.serve(ctx.server, request)
    rows = [row(item, ctx.server.hostname, False) for item in items_of(reply)]
    replies, _, missing = await _from_members(ctx, method, hub, request, type(reply))
    for server, member_reply in replies:
        rows += [row(item, server.hostname, True) for item in items_of(member_reply)]
    return _with_missing({"HubName_str": hub, list_key: rows}, missing)


def _status(hub_name: str, v: SessionDetail, server_hostname: str) -> dict[str, Any]:
    v6 = _is_v6(v.client_ip)
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
        "ServerName_str": "" if v.bridge else server_hostname,
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
        "ServerHostname_str": "" if v.bridge else server_hostname,
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


@async_admin_method("GetSessionStatus", Scope.HUB)
async def get_session_status(ctx: AdminContext, p: Params) -> dict[str, Any]:
    session_name = _need_name(p)
    hub = _hub(ctx, p)
    host, detail, missing = await _here_or_on_members(
        ctx, "GetSessionStatus", hub, GetSessionStatus(hub=hub, name=session_name), SessionDetail,
        f"session {session_name!r}")
    return _with_missing(_status(hub, detail, host), missing)


@async_admin_method("DeleteSession", Scope.HUB)
async def delete_session(ctx: AdminContext, p: Params) -> dict[str, Any]:
    session_name = _need_name(p)
    hub = _hub(ctx, p)
    log.info("admin %s disconnects session %s of hub %s", ctx.peer, session_name, hub)
    _, _, missing = await _here_or_on_members(
        ctx, "DeleteSession", hub, DeleteSession(hub=hub, name=session_name), Ack, f"session {session_name!r}")
    return _with_missing({"HubName_str": hub, "Name_str": session_name}, missing)


# -- MAC and IP tables --------------------------------------------------------------

def _mac_row(e: MacRow, hostname: str, remote: bool) -> dict[str, Any]:
    return {
        "Key_u32": e.key,
        "SessionName_str": e.session_name,
        "MacAddress_bin": b64(e.mac),
        "VlanId_u32": e.vlan_id,
        "CreatedTime_dt": dt(e.created_time),
        "UpdatedTime_dt": dt(e.updated_time),
        "RemoteItem_bool": remote,
        "RemoteHostname_str": hostname,
    }


def _ip_row(e: IpRow, hostname: str, remote: bool) -> dict[str, Any]:
    return {
        "Key_u32": e.key,
        "SessionName_str": e.session_name,
        "Ip_ip": e.ip,
        "IpV6_ip": e.ip,
        "IpAddress_ip": e.ip,
        "DhcpAllocated_bool": e.dhcp_allocated,
        "CreatedTime_dt": dt(e.created_time),
        "UpdatedTime_dt": dt(e.updated_time),
        "RemoteItem_bool": remote,
        "RemoteHostname_str": hostname,
    }


@async_admin_method("EnumMacTable", Scope.HUB)
async def enum_mac_table(ctx: AdminContext, p: Params) -> dict[str, Any]:
    return await _listing(ctx, p, "EnumMacTable", "MacTable", EnumMacTable, lambda reply: reply.rows, _mac_row)


@async_admin_method("EnumIpTable", Scope.HUB)
async def enum_ip_table(ctx: AdminContext, p: Params) -> dict[str, Any]:
    return await _listing(ctx, p, "EnumIpTable", "IpTable", EnumIpTable, lambda reply: reply.rows, _ip_row)


async def _delete_entry(ctx: AdminContext, p: Params, mac: bool) -> dict[str, Any]:
    hub = _hub(ctx, p)
    key = p.u32("Key")
    request = DeleteMacTable(hub=hub, key=key) if mac else DeleteIpTable(hub=hub, key=key)
    _, _, missing = await _here_or_on_members(ctx, type(request).__name__, hub, request, Ack,
                                              f"{'MAC' if mac else 'IP'} table entry {key}")
    return _with_missing({"HubName_str": hub, "Key_u32": key}, missing)


@async_admin_method("DeleteMacTable", Scope.HUB)
async def delete_mac_table(ctx: AdminContext, p: Params) -> dict[str, Any]:
    return await _delete_entry(ctx, p, mac=True)


@async_admin_method("DeleteIpTable", Scope.HUB)
async def delete_ip_table(ctx: AdminContext, p: Params) -> dict[str, Any]:
    return await _delete_entry(ctx, p, mac=False)
