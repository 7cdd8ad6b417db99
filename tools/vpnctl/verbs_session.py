"""Session, MAC/IP table and local bridge verbs (vpncmd names).

Facts from SoftEther 5.01 (Command.c Ps*, Admin.c, softether-protocol.md §8):
- Sessions, MAC and IP tables are per hub (`HubName_str`); on a cluster
  controller the lists include sessions on members (`RemoteSession_bool`,
  `RemoteItem_bool` with `RemoteHostname_str`).
- vpncmd's MacTable/IpTable take an optional session name and show only its
  entries; the server has no such filter, so it is applied here.
- The Location column is vpncmd's: SessionList asks GetServerInfo first (as
  PsSessionList does; a failure counts as standalone). Standalone: "Local
  Session"; in a cluster: "On '<RemoteHostname>'" (remote rows, and local
  rows whose server named itself), else "Local Session". MacTable/IpTable:
  "On '<RemoteHostname>'", or "On This Server" when no host name is given.
- A vpncluster controller names the members that did not answer in time
  under `MissingServers` (SoftEther clients ignore it); the tables get a
  warning line per missing server under them.
- Session names look like SID-<USER IN CAPITALS>-<n>.
- Local bridges name the hub `HubNameLB_str` (not HubName_str).
"""

from __future__ import annotations

from typing import Any

from tools.vpnctl import render as r
from tools.vpnctl.args import Param, Positional, to_yes_no
from tools.vpnctl.client import AdminError
from tools.vpnctl.spec import Ctx, Result, Verb, no_params, simple
from tools.vpnctl.verbs_server import traffic_fields

SERVER_TYPE_KEY = "_ServerType"
"""vpnctl's note in SessionList's result: GetServerInfo's ServerType_u32."""
MISSING_KEY = "MissingServers"


def _session_location(item: dict[str, Any], server_type: int) -> str:
    # Command.c PsSessionList: SM_SESS_NORMAL / SM_SESS_REMOTE / SM_SESS_LOCAL(_2)
    host = str(item.get("RemoteHostname_str", ""))
    if server_type == 0 or (not item.get("RemoteSession_bool") and not host):
        return "Local Session"
    return f"On '{host}'"


def _table_location(item: dict[str, Any]) -> str:
    # Command.c PsMacTable/PsIpTable: SM_MACIP_LOCAL / SM_MACIP_SERVER
    host = str(item.get("RemoteHostname_str", ""))
    return f"On '{host}'" if host else "On This Server"


def missing_note(res: Result) -> str:
    """One warning line per server that did not answer (empty when none)."""
    lines = []
    for m in res.get(MISSING_KEY, []):
        lines.append(f"Warning: cluster member {m.get('Hostname', '?')} (ID {m.get('Id', '?')}) did not answer "
                     f"({m.get('Reason', '')}); its entries are not listed.")
    return "\n".join(lines)


def _with_note(table: str, res: Result) -> str:
    note = missing_note(res)
    return f"{table}\n{note}" if note else table


def render_session_list(res: Result) -> str:
    server_type = int(res.get(SERVER_TYPE_KEY, 0))
    rows = []
    for s in res.get("SessionList", []):
        bridge = bool(s.get("BridgeMode_bool"))
        rows.append(
            {
                **s,
                "_Location": _session_location(s, server_type),
                "_Host": "Ethernet Bridge" if bridge else s.get("Hostname_str", ""),
                "_Tcp": "None" if bridge else f"{s.get('CurrentNumTcp_u32', 0)} / {s.get('MaxNumTcp_u32', 0)}",
            }
        )
    return _with_note(r.list_table(rows, SESSION_LIST_COLUMNS), res)


def _session_list(ctx: Ctx) -> Result:
    """GetServerInfo (for the Location column, as vpncmd), then EnumSession."""
    hub = ctx.need_hub("SessionList")
    try:
        server_type = int(ctx.client.call("GetServerInfo").get("ServerType_u32", 0))
    except AdminError:
        server_type = 0
    return {**ctx.client.call("EnumSession", {"HubName_str": hub}), SERVER_TYPE_KEY: server_type}


SESSION_LIST_COLUMNS: list[r.Field] = [
    ("Session Name", "Name_str"),
    ("VLAN ID", "VLanId_u32", lambda v: "-" if not v else str(v)),
    ("Location", "_Location", str),
    ("User Name", "Username_str"),
    ("Source Host Name", "_Host", str),
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
    """MacTable/IpTable: the hub's table, filtered by an optional session
    name. The result's list is named like the verb ("MacTable", "IpTable")."""

    def run(ctx: Ctx) -> Result:
        res = ctx.client.call(method, {"HubName_str": ctx.need_hub(verb)})
        if ctx.args.arg:
            res = {**res, verb: [e for e in res.get(verb, []) if e.get("SessionName_str") == ctx.args.arg]}
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
    rows = [{**e, "_Location": _table_location(e)} for e in res.get("MacTable", [])]
    return _with_note(r.list_table(rows, MAC_COLUMNS), res)


def render_ip_table(res: Result) -> str:
    rows = []
    for e in res.get("IpTable", []):
        ip = str(e.get("IpAddress_ip") or e.get("Ip_ip", ""))
        if e.get("DhcpAllocated_bool"):
            ip += " (DHCP)"
        rows.append({**e, "_Ip": ip, "_Location": _table_location(e)})
    return _with_note(r.list_table(rows, IP_COLUMNS), res)


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


_HUB = Positional(name="hubname")
_DEVICE = Param(name="DEVICE", required=True)

VERBS: list[Verb] = [
    Verb(
        name="SessionList",
        methods=("GetServerInfo", "EnumSession"),
        summary="List the sessions of the Virtual Hub",
        hub_scoped=True,
        run=_session_list,
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
    *(
        Verb(
            name=name,
            methods=(method,),
            summary=f"List the {what} address table (optionally of one session)",
            positional=Positional(name="session", required=False),
            hub_scoped=True,
            run=_table_for_session(method, name),
            render=render,
        )
        for name, method, what, render in (
            ("MacTable", "EnumMacTable", "MAC", render_mac_table),
            ("IpTable", "EnumIpTable", "IP", render_ip_table),
        )
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
