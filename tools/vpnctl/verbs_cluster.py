"""Cluster, session, MAC/IP table and local bridge verbs (vpncmd names).

Facts from SoftEther 5.01 (Command.c Ps*, Admin.c, softether-protocol.md §8):
- All three ClusterSetting* verbs are one method, SetFarmSetting, with
  ServerType_u32 0/1/2. The server restarts itself afterwards
  (asynchronously): the call returns success first, then the admin port goes
  away for a moment. A weight of 0 means 100.
- ClusterSettingMember: vpncmd sends MemberPassword = SHA0(pw); the JSON-RPC
  API also takes MemberPasswordPlaintext_str and hashes it the same way when
  the binary field is absent, so we send the plaintext (no SHA-0 here). A
  member setting with no ports or port 0 is silently ignored by SoftEther;
  we reject it client-side as vpncmd does.
- EnumFarmMember / GetFarmInfo answer only on a controller (else error 46);
  GetFarmConnectionStatus only on a member (else 55).
- Local bridges name the hub `HubNameLB_str` (not HubName_str).
"""

from __future__ import annotations

import base64
import ssl
from typing import Any

from node.softether.errors import error_name, error_text
from tools.vpnctl import render as r
from tools.vpnctl.args import (
    Param,
    Positional,
    UsageError,
    split_host_port,
    to_ipv4,
    to_port_list,
    to_uint,
    to_yes_no,
)
from tools.vpnctl.spec import Ctx, Result, Verb, VerbError, no_params, simple
from tools.vpnctl.verbs_server import fmt_server_type, traffic_fields

SERVER_TYPE_STANDALONE, SERVER_TYPE_CONTROLLER, SERVER_TYPE_MEMBER = 0, 1, 2
DEFAULT_WEIGHT = 100  # FARM_DEFAULT_WEIGHT


def _controller(ctx: Ctx) -> dict[str, Any]:
    weight = to_uint("WEIGHT", ctx.args.get("WEIGHT")) or DEFAULT_WEIGHT
    return {
        "ServerType_u32": SERVER_TYPE_CONTROLLER,
        "Weight_u32": weight,
        "ControllerOnly_bool": to_yes_no("ONLY", ctx.args.get("ONLY")),
    }


def _member(ctx: Ctx) -> dict[str, Any]:
    assert ctx.args.arg is not None  # required positional
    host, port = split_host_port(ctx.args.arg)
    password = ctx.args.get("PASSWORD")
    if password is None:
        raise UsageError("ClusterSettingMember: missing required parameter /PASSWORD:<value>")
    return {
        "ServerType_u32": SERVER_TYPE_MEMBER,
        "ControllerName_str": host,
        "ControllerPort_u32": port,
        "MemberPasswordPlaintext_str": password,
        "PublicIp_ip": to_ipv4("IP", ctx.args.get("IP")),
        "Ports_u32": to_port_list("PORTS", ctx.args.get("PORTS")),
        "Weight_u32": to_uint("WEIGHT", ctx.args.get("WEIGHT")) or DEFAULT_WEIGHT,
    }


def render_cluster_setting(res: Result) -> str:
    t = res.get("ServerType_u32")
    rows = [("Current Setting", fmt_server_type(t))]
    if t == SERVER_TYPE_CONTROLLER:
        rows.append(("Controller Functions Only", r.fmt_bool(res.get("ControllerOnly_bool", False))))
    if t != SERVER_TYPE_STANDALONE:
        rows.append(("Weight", r.fmt_int(res.get("Weight_u32") or DEFAULT_WEIGHT)))
    if t == SERVER_TYPE_MEMBER:
        ip = res.get("PublicIp_ip", "0.0.0.0")
        rows.append(("Public IP Address", "Automatic" if ip in ("", "0.0.0.0") else str(ip)))
        rows.append(("Public Port List", ", ".join(str(p) for p in res.get("Ports_u32", []))))
        rows.append(("Controller", f"{res.get('ControllerName_str', '')}:{res.get('ControllerPort_u32', 0)}"))
    return r.rows_table(rows)


def _role(v: Any) -> str:
    return "Controller" if v else "Member"


MEMBER_LIST_COLUMNS: list[r.Field] = [
    ("ID", "Id_u32", str),
    ("Type", "Controller_bool", _role),
    ("Connection Started At", "ConnectedTime_dt"),
    ("Host Name", "Hostname_str"),
    ("IP Address", "Ip_ip"),
    ("Point", "Point_u32"),
    ("Number of Sessions", "NumSessions_u32"),
    ("Number of TCP Connections", "NumTcpConnections_u32"),
    ("Number of Operating Virtual Hubs", "NumHubs_u32"),
    ("Using Client Connection License", "AssignedClientLicense_u32"),
    ("Using Bridge Connection License", "AssignedBridgeLicense_u32"),
]


def _member_id(ctx: Ctx) -> dict[str, Any]:
    return {"Id_u32": to_uint("id", ctx.args.arg)}


def render_member_info(res: Result) -> str:
    rows = [
        ("Type", "Cluster Controller" if res.get("Controller_bool") else "Cluster Member Server"),
        ("Connection Established at", r.fmt_dt(res.get("ConnectedTime_dt"))),
        ("IP Address", str(res.get("Ip_ip", ""))),
        ("Host Name", str(res.get("Hostname_str", ""))),
        ("Points", r.fmt_int(res.get("Point_u32", 0))),
        ("Weight", r.fmt_int(res.get("Weight_u32", 0))),
    ]
    ports = res.get("Ports_u32", [])
    rows.append(("Public Ports", str(len(ports))))
    rows += [(f"Public Port #{i}", str(p)) for i, p in enumerate(ports, 1)]
    hubs = res.get("HubsList", [])
    rows.append(("Virtual Hubs", str(len(hubs))))
    for i, hub in enumerate(hubs, 1):
        kind = "Dynamic" if hub.get("DynamicHub_bool") else "Static"
        rows.append((f"Virtual Hub #{i}", f"{hub.get('HubName_str', '')} ({kind} Virtual Hub)"))
    rows.append(("Sessions", r.fmt_int(res.get("NumSessions_u32", 0))))
    rows.append(("TCP Connections", r.fmt_int(res.get("NumTcpConnections_u32", 0))))
    return r.rows_table(rows)


def _member_cert_get(ctx: Ctx) -> Result:
    res = ctx.client.call("GetFarmInfo", _member_id(ctx))
    der = base64.b64decode(res.get("ServerCert_bin", "") or "")
    if not der:
        raise VerbError("the server returned no certificate for that member")
    path = ctx.args.get("SAVECERT") or ""
    try:
        # PEM like vpncmd's XToFileW(..., text=true).
        with open(path, "w", encoding="ascii") as f:
            f.write(ssl.DER_cert_to_PEM_cert(der))
    except OSError as e:
        raise VerbError(f"cannot write the certificate to {path!r}: {e.strerror or e}") from None
    return res


def render_connection_status(res: Result) -> str:
    online = bool(res.get("Online_bool"))
    rows = [
        ("Controller IP Address", str(res.get("Ip_ip", "")) if online else "Not Connected"),
        ("Port Number", str(res.get("Port_u32", "")) if online else "Not Connected"),
        ("Connection Status", "Online" if online else "Offline"),
    ]
    if not online:
        code = res.get("LastError_u32", 0)
        rows.append(("Last Error", f"{error_name(code)} ({code}): {error_text(code)}"))
    rows += [
        ("Connection Start", r.fmt_dt(res.get("StartedTime_dt"))),
        ("First Connection Established", r.fmt_dt(res.get("FirstConnectedTime_dt"))),
        ("Current Connection Established", r.fmt_dt(res.get("CurrentConnectedTime_dt"))),
        ("Number of Attempts", r.fmt_int(res.get("NumTry_u32", 0))),
        ("Number of Successful Connections", r.fmt_int(res.get("NumConnected_u32", 0))),
        ("Number of Failed Connections", r.fmt_int(res.get("NumFailed_u32", 0))),
    ]
    return r.rows_table(rows)


# -- sessions and tables -----------------------------------------------------

def _location(item: dict[str, Any], flag: str) -> str:
    return str(item.get("RemoteHostname_str", "")) if item.get(flag) else "Local"


def render_session_list(res: Result) -> str:
    rows = []
    for s in res.get("SessionList", []):
        rows.append(
            {
                **s,
                "_Location": _location(s, "RemoteSession_bool"),
                "_Tcp": f"{s.get('CurrentNumTcp_u32', 0)} / {s.get('MaxNumTcp_u32', 0)}",
            }
        )
    return r.list_table(rows, SESSION_LIST_COLUMNS)


SESSION_LIST_COLUMNS: list[r.Field] = [
    ("Session Name", "Name_str"),
    ("VLAN ID", "VLanId_u32", lambda v: "-" if not v else str(v)),
    ("Location", "_Location", str),
    ("User Name", "Username_str"),
    ("Source Host Name", "Hostname_str"),
    ("TCP Connections", "_Tcp", str),
    ("Transfer Bytes", "PacketSize_u64", r.fmt_int),
    ("Transfer Packets", "PacketNum_u64", r.fmt_int),
]

SESSION_GET_FIELDS: list[r.Field] = [
    ("Session Name", "Name_str"),
    ("User Name", "Username_str"),
    ("User Name (Real)", "RealUsername_str"),
    ("Group Name", "GroupName_str"),
    ("Client IP Address", "SessionStatus_ClientIp_ip"),
    ("Client Host Name", "SessionStatus_ClientHostName_str"),
    ("Client Product Name", "ClientProductName_str"),
    ("Client OS Name", "ClientOsName_str"),
    ("Connected", "Connected_bool"),
    ("Protocol", "UnderlayProtocol_str"),
    ("Cipher", "CipherName_str"),
    ("Encryption", "UseEncrypt_bool"),
    ("Compression", "UseCompress_bool"),
    ("Half Duplex", "HalfConnection_bool"),
    ("Bridge Mode", "IsBridgeMode_bool"),
    ("Monitoring Mode", "IsMonitorMode_bool"),
    ("Max Number of TCP Connections", "MaxTcpConnections_u32"),
    ("Number of TCP Connections", "NumTcpConnections_u32"),
    ("Connection Started at", "StartTime_dt"),
    ("First Session Established at", "FirstConnectionEstablisiedTime_dt"),
    ("Current Session Established at", "CurrentConnectionEstablishTime_dt"),
    ("Number of Established Sessions", "NumConnectionsEstablished_u32"),
    ("VLAN ID", "VLanId_u32"),
    ("Total Sent Bytes", "TotalSendSize_u64"),
    ("Total Received Bytes", "TotalRecvSize_u64"),
    *traffic_fields(),
]


def _hub_name(verb: str):
    return lambda ctx: {"HubName_str": ctx.need_hub(verb), **({"Name_str": ctx.args.arg} if ctx.args.arg else {})}


def _table_for_session(method: str, verb: str):
    """MacTable/IpTable: the hub's table, filtered by an optional session name."""

    def run(ctx: Ctx) -> Result:
        res = ctx.client.call(method, {"HubName_str": ctx.need_hub(verb)})
        if ctx.args.arg:
            key = "MacTable" if method == "EnumMacTable" else "IpTable"
            res = {**res, key: [e for e in res.get(key, []) if e.get("SessionName_str") == ctx.args.arg]}
        return res

    return run


MAC_COLUMNS: list[r.Field] = [
    ("ID", "Key_u32", str),
    ("Session Name", "SessionName_str"),
    ("VLAN ID", "VlanId_u32", lambda v: "-" if not v else str(v)),
    ("MAC Address", "MacAddress_bin", r.fmt_mac),
    ("Creation Time", "CreatedTime_dt"),
    ("Updated Time", "UpdatedTime_dt"),
    ("Location", "_Location", str),
]

IP_COLUMNS: list[r.Field] = [
    ("ID", "Key_u32", str),
    ("Session Name", "SessionName_str"),
    ("IP Address", "_Ip", str),
    ("Creation Time", "CreatedTime_dt"),
    ("Updated Time", "UpdatedTime_dt"),
    ("Location", "_Location", str),
]


def render_mac_table(res: Result) -> str:
    rows = [{**e, "_Location": _location(e, "RemoteItem_bool")} for e in res.get("MacTable", [])]
    return r.list_table(rows, MAC_COLUMNS)


def render_ip_table(res: Result) -> str:
    rows = []
    for e in res.get("IpTable", []):
        ip = str(e.get("IpAddress_ip") or e.get("Ip_ip", ""))
        if e.get("DhcpAllocated_bool"):
            ip += " (DHCP)"
        rows.append({**e, "_Ip": ip, "_Location": _location(e, "RemoteItem_bool")})
    return r.list_table(rows, IP_COLUMNS)


# -- local bridges ------------------------------------------------------------

def _bridge(ctx: Ctx, with_tap: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"HubNameLB_str": ctx.args.arg, "DeviceName_str": ctx.args.get("DEVICE")}
    if with_tap:
        out["TapMode_bool"] = to_yes_no("TAP", ctx.args.get("TAP"))
    return out


def _bridge_status(item: dict[str, Any]) -> str:
    if not item.get("Online_bool"):
        return "Offline"
    return "Operating" if item.get("Active_bool") else "Error occurred"


def render_bridge_list(res: Result) -> str:
    rows = [
        {**e, "_No": str(i), "_Status": _bridge_status(e)}
        for i, e in enumerate(res.get("LocalBridgeList", []), 1)
    ]
    cols: list[r.Field] = [
        ("Number", "_No", str),
        ("Virtual Hub Name", "HubNameLB_str"),
        ("Network Adapter or Tap Device Name", "DeviceName_str"),
        ("Status", "_Status", str),
    ]
    return r.list_table(rows, cols)


_ID = Positional(name="id")
_HUB = Positional(name="hubname")
_DEVICE = Param(name="DEVICE", required=True)

VERBS: list[Verb] = [
    Verb(
        name="ClusterSettingController",
        methods=("SetFarmSetting",),
        summary="Make this server a cluster controller (it restarts)",
        params=(Param(name="WEIGHT"), Param(name="ONLY")),
        run=simple("SetFarmSetting", _controller),
    ),
    Verb(
        name="ClusterSettingMember",
        methods=("SetFarmSetting",),
        summary="Make this server a cluster member (it restarts)",
        positional=Positional(name="server:port"),
        params=(
            Param(name="IP"),
            Param(name="PORTS", required=True),
            Param(name="PASSWORD", required=True),
            Param(name="WEIGHT"),
        ),
        run=simple("SetFarmSetting", _member),
    ),
    Verb(
        name="ClusterSettingStandalone",
        methods=("SetFarmSetting",),
        summary="Make this server a standalone server (it restarts)",
        run=simple("SetFarmSetting", lambda ctx: {"ServerType_u32": SERVER_TYPE_STANDALONE}),
    ),
    Verb(
        name="ClusterSettingGet",
        methods=("GetFarmSetting",),
        summary="Get the clustering configuration",
        run=no_params("GetFarmSetting"),
        render=render_cluster_setting,
    ),
    Verb(
        name="ClusterMemberList",
        methods=("EnumFarmMember",),
        summary="List the cluster members (controller only)",
        run=no_params("EnumFarmMember"),
        render=lambda res: r.list_table(res.get("FarmMemberList", []), MEMBER_LIST_COLUMNS),
    ),
    Verb(
        name="ClusterMemberInfoGet",
        methods=("GetFarmInfo",),
        summary="Get a cluster member's information (controller only)",
        positional=_ID,
        run=simple("GetFarmInfo", _member_id),
        render=render_member_info,
    ),
    Verb(
        name="ClusterMemberCertGet",
        methods=("GetFarmInfo",),
        summary="Save a cluster member's certificate (PEM) to /SAVECERT",
        positional=_ID,
        params=(Param(name="SAVECERT", required=True),),
        run=_member_cert_get,
    ),
    Verb(
        name="ClusterConnectionStatusGet",
        methods=("GetFarmConnectionStatus",),
        summary="Get the connection status to the controller (member only)",
        run=no_params("GetFarmConnectionStatus"),
        render=render_connection_status,
    ),
    Verb(
        name="SessionList",
        methods=("EnumSession",),
        summary="List the sessions of the Virtual Hub",
        hub_scoped=True,
        run=simple("EnumSession", _hub_name("SessionList")),
        render=render_session_list,
    ),
    Verb(
        name="SessionGet",
        methods=("GetSessionStatus",),
        summary="Get a session's information",
        positional=Positional(name="name"),
        hub_scoped=True,
        run=simple("GetSessionStatus", _hub_name("SessionGet")),
        render=lambda res: r.item_value_table(res, SESSION_GET_FIELDS),
    ),
    Verb(
        name="SessionDisconnect",
        methods=("DeleteSession",),
        summary="Disconnect a session",
        positional=Positional(name="name"),
        hub_scoped=True,
        run=simple("DeleteSession", _hub_name("SessionDisconnect")),
    ),
    Verb(
        name="MacTable",
        methods=("EnumMacTable",),
        summary="List the MAC address table (optionally of one session)",
        positional=Positional(name="session", required=False),
        hub_scoped=True,
        run=_table_for_session("EnumMacTable", "MacTable"),
        render=render_mac_table,
    ),
    Verb(
        name="IpTable",
        methods=("EnumIpTable",),
        summary="List the IP address table (optionally of one session)",
        positional=Positional(name="session", required=False),
        hub_scoped=True,
        run=_table_for_session("EnumIpTable", "IpTable"),
        render=render_ip_table,
    ),
    Verb(
        name="BridgeCreate",
        methods=("AddLocalBridge",),
        summary="Bridge a Virtual Hub to a network device or a new TAP device",
        positional=_HUB,
        params=(_DEVICE, Param(name="TAP")),
        run=simple("AddLocalBridge", lambda ctx: _bridge(ctx, True)),
    ),
    Verb(
        name="BridgeList",
        methods=("EnumLocalBridge",),
        summary="List the local bridges",
        run=no_params("EnumLocalBridge"),
        render=render_bridge_list,
    ),
    Verb(
        name="BridgeDelete",
        methods=("DeleteLocalBridge",),
        summary="Delete a local bridge",
        positional=_HUB,
        params=(_DEVICE,),
        run=simple("DeleteLocalBridge", lambda ctx: _bridge(ctx, False)),
    ),
]
