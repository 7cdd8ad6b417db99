"""Cluster verbs (vpncmd names): mode settings, member list and status.

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
- Member ids in EnumFarmMember are opaque 32-bit numbers (not 1..N) and
  are reused after a member leaves and rejoins.
- vpncluster adds `EndpointError_str` to EnumFarmMember / GetFarmInfo (why a
  member gets no sessions for its public endpoint; empty when verified).
  ClusterMemberList adds its column, and ClusterMemberInfoGet its row, only
  when it is non-empty: otherwise (and against SoftEther, where the field is
  absent) the output is vpncmd's.
- Graceful drain is ours (SoftEther has none): ClusterMemberDrain ID
  [/RATE:sessions per second] and ClusterMemberUndrain ID call the methods
  of the same names; `DrainState_str` ("draining", "drained") gets a column
  in ClusterMemberList and rows in ClusterMemberInfoGet only when some
  member is drained, so the output stays vpncmd's otherwise.
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
from tools.vpnctl.verbs_server import fmt_server_type

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


ENDPOINT_COLUMN: r.Field = ("Public Endpoint Error", "EndpointError_str")
DRAIN_COLUMN: r.Field = ("Drain", "DrainState_str")


def render_member_list(res: Result) -> str:
    rows = res.get("FarmMemberList", [])
    extra = [column for column in (ENDPOINT_COLUMN, DRAIN_COLUMN) if any(row.get(column[1]) for row in rows)]
    return r.list_table(rows, MEMBER_LIST_COLUMNS + extra)


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
    if res.get("EndpointError_str"):
        rows.append(("Public Endpoint Error", str(res["EndpointError_str"])))
    if res.get("DrainState_str"):
        rows += render_drain_rows(res)
    return r.rows_table(rows)


def render_drain_rows(res: Result) -> list[tuple[str, str]]:
    return [("Drain", str(res.get("DrainState_str", ""))),
            ("Drain Rate (sessions/s)", r.fmt_int(res.get("DrainRate_u32", 0))),
            ("Sessions Moved by the Drain", r.fmt_int(res.get("DrainMoved_u32", 0)))]


def render_drain(res: Result) -> str:
    rows = [("ID", str(res.get("Id_u32", "")))]
    rows += render_drain_rows(res) if res.get("DrainState_str") else [("Drain", "not drained")]
    return r.rows_table(rows)


def _drain(ctx: Ctx) -> dict[str, Any]:
    return {**_member_id(ctx), "Rate_u32": to_uint("RATE", ctx.args.get("RATE"))}


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


_ID = Positional(name="id")

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
        render=render_member_list,
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
        name="ClusterMemberDrain",
        methods=("ClusterMemberDrain",),
        summary="Drain a cluster member: no new sessions, its sessions move away at /RATE per second (ours)",
        positional=_ID,
        params=(Param(name="RATE"),),
        run=simple("ClusterMemberDrain", _drain),
        render=render_drain,
    ),
    Verb(
        name="ClusterMemberUndrain",
        methods=("ClusterMemberUndrain",),
        summary="End a cluster member's drain: it takes new sessions again (ours)",
        positional=_ID,
        run=simple("ClusterMemberUndrain", _member_id),
        render=render_drain,
    ),
    Verb(
        name="ClusterConnectionStatusGet",
        methods=("GetFarmConnectionStatus",),
        summary="Get the connection status to the controller (member only)",
        run=no_params("GetFarmConnectionStatus"),
        render=render_connection_status,
    ),
]
