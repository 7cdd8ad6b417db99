"""Server, Virtual Hub and user verbs (vpncmd names) and their JSON-RPC calls.

Facts from SoftEther 5.01 that these verbs rely on (Command.c Ps*, Admin.c):
- HubCreate makes a dynamic hub on a cluster controller and a standalone hub
  elsewhere; vpncmd asks GetServerInfo for the server type first.
- An omitted hub password is the empty password: the server stores
  SHA0("") (vpncmd hashes the empty string too).
- UserCreate makes a password user with a random, unknown password hash (the
  user cannot log in until UserPasswordSet). UserPasswordSet reads the user
  with GetUser and writes it back with SetUser, so group, real name, note,
  expiry and policy are kept; the plaintext `Auth_Password_str` is hashed by
  the server only when `HashedKey_bin` is absent, so the old hashes are
  dropped from the copy.
- Passwords go as the JSON-RPC plaintext fields (PlainTextPassword_str,
  AdminPasswordPlainText_str): the server hashes them exactly as vpncmd would
  client-side, and the admin password already travels in clear inside TLS.
"""

from __future__ import annotations

import base64
import os
from typing import Any, Callable

from tools.vpnctl import render as r
from tools.vpnctl.args import Param, Positional, UsageError
from tools.vpnctl.spec import Ctx, Result, Verb, no_params, simple

SERVER_TYPES = {0: "Standalone Server", 1: "Cluster Controller", 2: "Cluster Member Server"}
HUB_TYPES = {0: "Standalone", 1: "Static", 2: "Dynamic"}
AUTH_TYPES = {
    0: "Anonymous Authentication",
    1: "Password Authentication",
    2: "Individual Certificate Authentication",
    3: "Signed Certificate Authentication",
    4: "RADIUS Authentication",
    5: "NT Domain Authentication",
}
HUB_TYPE_STANDALONE, HUB_TYPE_STATIC, HUB_TYPE_DYNAMIC = 0, 1, 2
SERVER_TYPE_CONTROLLER = 1

fmt_server_type = r.enum_fmt(SERVER_TYPES)
fmt_hub_type = r.enum_fmt(HUB_TYPES)
fmt_auth_type = r.enum_fmt(AUTH_TYPES)


def traffic_fields(prefix: str = "") -> list[r.Field]:
    """The eight traffic counters (OutRpcTraffic names, "Ex." inside lists)."""
    out: list[r.Field] = []
    for way, label in (("Send", "Outgoing"), ("Recv", "Incoming")):
        out += [
            (f"{label} Unicast Packets", f"{prefix}{way}.UnicastCount_u64"),
            (f"{label} Unicast Total Size", f"{prefix}{way}.UnicastBytes_u64"),
            (f"{label} Broadcast Packets", f"{prefix}{way}.BroadcastCount_u64"),
            (f"{label} Broadcast Total Size", f"{prefix}{way}.BroadcastBytes_u64"),
        ]
    return out


def traffic_total(obj: dict[str, Any], what: str, prefix: str = "Ex.") -> int:
    """Sum of the four unicast/broadcast counters of `what` (Bytes or Count)."""
    total = 0
    for way in ("Send", "Recv"):
        for cast in ("Unicast", "Broadcast"):
            v = obj.get(f"{prefix}{way}.{cast}{what}_u64", 0)
            total += v if isinstance(v, int) else 0
    return total


def _ok_table(fields: list[r.Field]) -> Any:
    return lambda res: r.item_value_table(res, fields)


# -- server ---------------------------------------------------------------

METRICS_FIELDS: list[r.Field] = [
    ("Metrics Endpoint Enabled", "Enabled_bool", r.fmt_bool),
    ("Metrics Path", "Path_str"),
]


def _metrics_verb(name: str, summary: str, build: Callable[[Ctx], dict[str, Any]] | None,
                  positional: Positional | None = None) -> Verb:
    """A scrape credential verb: SetMetricsCredential with `build`'s params, or GetMetricsCredential."""
    method = "GetMetricsCredential" if build is None else "SetMetricsCredential"
    return Verb(name=name, methods=(method,), summary=f"{summary} (vpncluster)", positional=positional,
                run=no_params(method) if build is None else simple(method, build),
                render=_ok_table(METRICS_FIELDS))

SERVER_INFO_FIELDS: list[r.Field] = [
    ("Product Name", "ServerProductName_str"),
    ("Version", "ServerVersionString_str"),
    ("Build", "ServerBuildInfoString_str"),
    ("Host Name", "ServerHostName_str"),
    ("Server Type", "ServerType_u32", fmt_server_type),
    ("OS Type", "OsSystemName_str"),
    ("OS Product Name", "OsProductName_str"),
    ("OS Vendor Name", "OsVendorName_str"),
    ("OS Version", "OsVersion_str"),
    ("Kernel Name", "KernelName_str"),
    ("Kernel Version", "KernelVersion_str"),
]

SERVER_STATUS_FIELDS: list[r.Field] = [
    ("Server Type", "ServerType_u32", fmt_server_type),
    ("Number of Active Sockets", "NumTcpConnections_u32"),
    ("Number of Virtual Hubs", "NumHubTotal_u32"),
    ("Number of Static Virtual Hubs", "NumHubStatic_u32"),
    ("Number of Dynamic Virtual Hubs", "NumHubDynamic_u32"),
    ("Number of Sessions", "NumSessionsTotal_u32"),
    ("Number of Local Sessions", "NumSessionsLocal_u32"),
    ("Number of Remote Sessions", "NumSessionsRemote_u32"),
    ("Number of MAC Address Tables", "NumMacTables_u32"),
    ("Number of IP Address Tables", "NumIpTables_u32"),
    ("Number of Users", "NumUsers_u32"),
    ("Number of Groups", "NumGroups_u32"),
    ("Using Client Connection Licenses", "AssignedClientLicenses_u32"),
    ("Using Bridge Connection Licenses", "AssignedBridgeLicenses_u32"),
    *traffic_fields(),
    ("Server Started at", "StartTime_dt"),
    ("Current Time", "CurrentTime_dt"),
]


def _hub_create(hub_type: int | None):
    def run(ctx: Ctx) -> Result:
        t = hub_type
        if t is None:
            info = ctx.client.call("GetServerInfo", {})
            t = HUB_TYPE_DYNAMIC if info.get("ServerType_u32") == SERVER_TYPE_CONTROLLER else 0
        return ctx.client.call(
            "CreateHub",
            {
                "HubName_str": ctx.args.arg,
                "AdminPasswordPlainText_str": ctx.args.get("PASSWORD", "") or "",
                "Online_bool": True,
                "HubType_u32": t,
            },
        )

    return run


def _hub_set_type(hub_type: int):
    """HubSetStatic / HubSetDynamic as vpncmd does them (PsHubSetStatic):
    read the hub with GetHub, write it back with SetHub and the new type.
    SoftEther 5.01's StSetHub refuses any type change (ERR_NOT_SUPPORTED),
    so on a real server these verbs only ever report that error."""

    def run(ctx: Ctx) -> Result:
        name = ctx.args.arg
        current = ctx.client.call("GetHub", {"HubName_str": name})
        return ctx.client.call("SetHub", {**current, "HubName_str": name, "HubType_u32": hub_type})

    return run


HUB_LIST_COLUMNS: list[r.Field] = [
    ("Virtual Hub Name", "HubName_str"),
    ("Status", "Online_bool", lambda v: "Online" if v else "Offline"),
    ("Type", "HubType_u32", fmt_hub_type),
    ("Users", "NumUsers_u32"),
    ("Groups", "NumGroups_u32"),
    ("Sessions", "NumSessions_u32"),
    ("MAC Tables", "NumMacTables_u32"),
    ("IP Tables", "NumIpTables_u32"),
    ("Num Logins", "NumLogin_u32"),
    ("Last Login", "LastLoginTime_dt"),
    ("Last Communication", "LastCommTime_dt"),
    ("Transfer Bytes", "_TrafficBytes", r.fmt_int),
    ("Transfer Packets", "_TrafficPackets", r.fmt_int),
]


def with_traffic_totals(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of list records with synthetic _TrafficBytes/_TrafficPackets."""
    out = []
    for item in items:
        if item.get("IsTrafficFilled_bool", True):
            item = {
                **item,
                "_TrafficBytes": traffic_total(item, "Bytes"),
                "_TrafficPackets": traffic_total(item, "Count"),
            }
        out.append(item)
    return out


def render_hub_list(res: Result) -> str:
    return r.list_table(with_traffic_totals(res.get("HubList", [])), HUB_LIST_COLUMNS)


def _set_online(online: bool):
    def run(ctx: Ctx) -> Result:
        hub = ctx.hub_or_arg("HubSetOnline" if online else "HubSetOffline")
        return ctx.client.call("SetHubOnline", {"HubName_str": hub, "Online_bool": online})

    return run


# -- users ----------------------------------------------------------------

def _user_create(ctx: Ctx) -> Result:
    hub = ctx.need_hub("UserCreate")
    return ctx.client.call(
        "CreateUser",
        {
            "HubName_str": hub,
            "Name_str": ctx.args.arg,
            "GroupName_str": ctx.args.get("GROUP", "") or "",
            "Realname_utf": ctx.args.get("REALNAME", "") or "",
            "Note_utf": ctx.args.get("NOTE", "") or "",
            # A password user nobody knows the password of, as vpncmd makes.
            "AuthType_u32": 1,
            "HashedKey_bin": _b64(os.urandom(20)),
            "NtLmSecureHash_bin": _b64(os.urandom(16)),
        },
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _user_password_set(ctx: Ctx) -> Result:
    hub = ctx.need_hub("UserPasswordSet")
    password = ctx.args.get("PASSWORD")
    if password is None:
        raise UsageError("UserPasswordSet: missing required parameter /PASSWORD:<value>")
    user = ctx.client.call("GetUser", {"HubName_str": hub, "Name_str": ctx.args.arg})
    keep = {
        k: v
        for k, v in user.items()
        if k not in ("HashedKey_bin", "NtLmSecureHash_bin", "AuthType_u32")
        and not k.startswith(("UserX_", "Serial_", "CommonName_", "RadiusUsername_", "NtUsername_"))
    }
    keep.update({"HubName_str": hub, "AuthType_u32": 1, "Auth_Password_str": password})
    return ctx.client.call("SetUser", keep)


USER_LIST_COLUMNS: list[r.Field] = [
    ("User Name", "Name_str"),
    ("Full Name", "Realname_utf"),
    ("Group Name", "GroupName_str"),
    ("Description", "Note_utf"),
    ("Auth Method", "AuthType_u32", fmt_auth_type),
    ("Num Logins", "NumLogin_u32"),
    ("Last Login", "LastLoginTime_dt"),
    ("Expiration Date", "Expires_dt"),
    ("Transfer Bytes", "_TrafficBytes", r.fmt_int),
    ("Transfer Packets", "_TrafficPackets", r.fmt_int),
]

USER_GET_FIELDS: list[r.Field] = [
    ("User Name", "Name_str"),
    ("Full Name", "Realname_utf"),
    ("Description", "Note_utf"),
    ("Group Name", "GroupName_str"),
    ("Expiration Date", "ExpireTime_dt"),
    ("Auth Type", "AuthType_u32", fmt_auth_type),
    ("RADIUS / NT user name", "RadiusUsername_utf"),
    ("NT user name", "NtUsername_utf"),
    ("Signed certificate CN", "CommonName_utf"),
    ("Created on", "CreatedTime_dt"),
    ("Updated on", "UpdatedTime_dt"),
    *traffic_fields(),
    ("Number of Logins", "NumLogin_u32"),
]


def _hub_user(ctx: Ctx, verb: str) -> dict[str, Any]:
    return {"HubName_str": ctx.need_hub(verb), "Name_str": ctx.args.arg}


_NAME = Positional(name="name")

VERBS: list[Verb] = [
    Verb(
        name="ServerInfoGet",
        methods=("GetServerInfo",),
        summary="Get server information",
        run=no_params("GetServerInfo"),
        render=_ok_table(SERVER_INFO_FIELDS),
    ),
    Verb(
        name="ServerStatusGet",
        methods=("GetServerStatus",),
        summary="Get current server status",
        run=no_params("GetServerStatus"),
        render=_ok_table(SERVER_STATUS_FIELDS),
    ),
    Verb(
        name="ServerPasswordSet",
        methods=("SetServerPassword",),
        summary="Set the server administrator password",
        positional=Positional(name="password"),
        run=simple("SetServerPassword", lambda ctx: {"PlainTextPassword_str": ctx.args.arg}),
    ),
    # vpncluster's own: the scrape credential of GET /metrics (README, Monitoring)
    _metrics_verb("MetricsCredentialSet", "Set the credential Prometheus scrapes GET /metrics with",
                  lambda ctx: {"PlainTextPassword_str": ctx.args.arg}, Positional(name="credential")),
    _metrics_verb("MetricsCredentialDelete", "Remove the scrape credential: GET /metrics answers 404 again",
                  lambda ctx: {"PlainTextPassword_str": ""}),
    _metrics_verb("MetricsCredentialGet", "Show whether GET /metrics is on", None),
    Verb(
        name="HubCreate",
        methods=("GetServerInfo", "CreateHub"),
        summary="Create a Virtual Hub (dynamic on a cluster controller)",
        positional=_NAME,
        params=(Param(name="PASSWORD"),),
        run=_hub_create(None),
    ),
    Verb(
        name="HubCreateStatic",
        methods=("CreateHub",),
        summary="Create a static Virtual Hub (cluster controller)",
        positional=_NAME,
        params=(Param(name="PASSWORD"),),
        run=_hub_create(HUB_TYPE_STATIC),
    ),
    Verb(
        name="HubCreateDynamic",
        methods=("CreateHub",),
        summary="Create a dynamic Virtual Hub (cluster controller)",
        positional=_NAME,
        params=(Param(name="PASSWORD"),),
        run=_hub_create(HUB_TYPE_DYNAMIC),
    ),
    *(
        Verb(
            name=f"HubSet{HUB_TYPES[t]}",
            methods=("GetHub", "SetHub"),
            summary=f"Change a Virtual Hub's type to {HUB_TYPES[t].lower()} (SoftEther 5.01 refuses: ERR_NOT_SUPPORTED)",
            positional=_NAME,
            run=_hub_set_type(t),
        )
        for t in (HUB_TYPE_STATIC, HUB_TYPE_DYNAMIC)
    ),
    Verb(
        name="HubList",
        methods=("EnumHub",),
        summary="List the Virtual Hubs",
        run=no_params("EnumHub"),
        render=render_hub_list,
    ),
    Verb(
        name="HubDelete",
        methods=("DeleteHub",),
        summary="Delete a Virtual Hub",
        positional=_NAME,
        run=simple("DeleteHub", lambda ctx: {"HubName_str": ctx.args.arg}),
    ),
    Verb(
        name="HubSetOnline",
        methods=("SetHubOnline",),
        summary="Put the Virtual Hub (--hub or NAME) online",
        positional=Positional(name="name", required=False),
        run=_set_online(True),
    ),
    Verb(
        name="HubSetOffline",
        methods=("SetHubOnline",),
        summary="Put the Virtual Hub (--hub or NAME) offline",
        positional=Positional(name="name", required=False),
        run=_set_online(False),
    ),
    Verb(
        name="UserCreate",
        methods=("CreateUser",),
        summary="Create a user (no usable password until UserPasswordSet)",
        positional=_NAME,
        params=(Param(name="GROUP"), Param(name="REALNAME"), Param(name="NOTE")),
        hub_scoped=True,
        run=_user_create,
    ),
    Verb(
        name="UserPasswordSet",
        methods=("GetUser", "SetUser"),
        summary="Set a user's password (password authentication)",
        positional=_NAME,
        params=(Param(name="PASSWORD", required=True),),
        hub_scoped=True,
        run=_user_password_set,
    ),
    Verb(
        name="UserList",
        methods=("EnumUser",),
        summary="List the users of the Virtual Hub",
        hub_scoped=True,
        run=simple("EnumUser", lambda ctx: {"HubName_str": ctx.need_hub("UserList")}),
        render=lambda res: r.list_table(with_traffic_totals(res.get("UserList", [])), USER_LIST_COLUMNS),
    ),
    Verb(
        name="UserGet",
        methods=("GetUser",),
        summary="Get a user's settings",
        positional=_NAME,
        hub_scoped=True,
        run=simple("GetUser", lambda ctx: _hub_user(ctx, "UserGet")),
        render=_ok_table(USER_GET_FIELDS),
    ),
    Verb(
        name="UserDelete",
        methods=("DeleteUser",),
        summary="Delete a user",
        positional=_NAME,
        hub_scoped=True,
        run=simple("DeleteUser", lambda ctx: _hub_user(ctx, "UserDelete")),
    ),
]
