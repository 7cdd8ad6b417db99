"""Cascade connection and SecureNAT verbs (vpncmd names): the functions a
cluster cannot use (CLUSTERING.md §3.9.11), here so an operator sees the
server's clear error instead of "unknown command".

What SoftEther 5.01 answers (Admin.c): on a controller or member,
CascadeList (StEnumLink) fails with ERR_NOT_SUPPORTED; SecureNatEnable /
SecureNatDisable (StEnableSecureNAT / StDisableSecureNAT) fail with
ERR_NOT_SUPPORTED on a static hub and ERR_NOT_FARM_CONTROLLER on a member.
vpncmd's commands (Command.c PsCascadeList, PsSecureNatEnable, ...) each make
one call with only HubName, for the hub chosen with `Hub` (--hub here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tools.vpnctl import render as r
from tools.vpnctl.spec import Ctx, Result, Verb, simple


def _link_status(item: dict[str, Any]) -> str:
    """The Status column of PsCascadeList (offline, online, error, connecting)."""
    if not item.get("Online_bool"):
        return "Offline"
    if item.get("Connected_bool"):
        return "Online (Established)"
    error = item.get("LastError_u32", 0)
    return f"Error: {error}" if error else "Connecting"


CASCADE_COLUMNS: list[r.Field] = [
    ("Setting Name", "AccountName_utf"),
    ("Status", "_Status"),
    ("Established at", "ConnectedTime_dt"),
    ("Destination VPN Server", "Hostname_str"),
    ("Virtual Hub", "TargetHubName_str"),
]

NAT_STATUS_FIELDS: list[r.Field] = [
    ("Virtual Hub Name", "HubName_str"),
    ("TCP Sessions", "NumTcpSessions_u32"),
    ("UDP Sessions", "NumUdpSessions_u32"),
    ("ICMP Sessions", "NumIcmpSessions_u32"),
    ("DNS Sessions", "NumDnsSessions_u32"),
    ("DHCP Clients", "NumDhcpClients_u32"),
    ("Kernel-mode NAT is Active", "IsKernelMode_bool"),
    ("Raw IP mode NAT is Active", "IsRawIpMode_bool"),
]


def render_cascade_list(res: Result) -> str:
    items = [{**item, "_Status": _link_status(item)} for item in res.get("LinkList", [])]
    return r.list_table(items, CASCADE_COLUMNS)


def _hub_only(verb: str) -> Callable[[Ctx], dict[str, Any]]:
    return lambda ctx: {"HubName_str": ctx.need_hub(verb)}


def _hub_verb(name: str, method: str, summary: str, render: Callable[[Result], str] | None = None) -> Verb:
    return Verb(name=name, methods=(method,), summary=summary, hub_scoped=True,
                run=simple(method, _hub_only(name)), render=render)


VERBS: list[Verb] = [
    _hub_verb("CascadeList", "EnumLink", "List the cascade connections (standalone servers only)",
              render_cascade_list),
    _hub_verb("SecureNatEnable", "EnableSecureNAT", "Enable the SecureNAT function (virtual NAT and DHCP)"),
    _hub_verb("SecureNatDisable", "DisableSecureNAT", "Disable the SecureNAT function"),
    _hub_verb("SecureNatStatusGet", "GetSecureNATStatus", "Get the SecureNAT function's status",
              lambda res: r.item_value_table(res, NAT_STATUS_FIELDS)),
]
