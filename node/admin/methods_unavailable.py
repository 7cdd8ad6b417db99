"""Cascade connection and SecureNAT admin methods: functions a cluster cannot
use (CLUSTERING.md §3.9.11), which vpncluster does not implement at all.

Each answers SoftEther 5.01's error for its mode (Admin.c), so scripts and
vpnctl see what a real server says, and otherwise an honest
ERR_NOT_SUPPORTED saying that vpncluster has no such function:

- Cascades (StCreateLink, StEnumLink, StGetLink, StSetLink, StDeleteLink,
  StRenameLink, StSetLinkOnline, StSetLinkOffline, StGetLinkStatus): on a
  controller or member, CreateLink fails with ERR_LINK_CANT_CREATE_ON_FARM
  and every other one with ERR_NOT_SUPPORTED, before the hub is looked up.
  On a standalone server EnumLink lists no cascade (there is none: none can
  be created) after checking the hub exists; the others are not supported.
- SecureNAT (StEnableSecureNAT, StDisableSecureNAT, StGetSecureNATOption,
  StSetSecureNATOption, StGetSecureNATStatus, StEnumNAT, StEnumDHCP): a hub
  that does not exist on this server is ERR_HUB_NOT_FOUND (a member has only
  its static hubs and the dynamic hubs placed on it); a static hub is
  ERR_NOT_SUPPORTED; on a member, the four settings methods then answer
  ERR_NOT_FARM_CONTROLLER. SoftEther runs SecureNAT on a standalone hub and
  on a controller's dynamic hub; vpncluster answers ERR_NOT_SUPPORTED there.

Authority is SoftEther's CHECK_RIGHT: the server administrator, or the
administrator of the hub named in HubName_str (dispatch.Scope.HUB).
"""

from __future__ import annotations

from typing import Any

from node.admin.dispatch import AdminContext, Handler, Scope, admin_method
from node.admin.jsonrpc import RpcError
from node.admin.jsonvalue import Params
from node.admin.methods_server import hubs_here
from node.softether.errors import Err
from node.state import model

NO_CASCADES = "vpncluster does not implement cascade connections"
NO_SECURENAT = "vpncluster does not implement SecureNAT (virtual NAT and virtual DHCP server)"
CLUSTER_CASCADES = "cascade connections cannot be used with clustering (standalone servers only)"

LINK_METHODS = ("GetLink", "SetLink", "DeleteLink", "RenameLink", "SetLinkOnline", "SetLinkOffline",
                "GetLinkStatus")
SECURENAT_SETTINGS = ("EnableSecureNAT", "DisableSecureNAT", "GetSecureNATOption", "SetSecureNATOption")
SECURENAT_STATUS = ("GetSecureNATStatus", "EnumNAT", "EnumDHCP")


def _server_type(ctx: AdminContext) -> int:
    return ctx.server.state.config.farm.server_type


def _hub_here(ctx: AdminContext, name: str) -> model.Hub:
    """The hub `name` as it exists on this server (StGetHub's GetHub over the
    Cedar HubList); ERR_HUB_NOT_FOUND if it does not exist here."""
    key = name.lower()
    for hub in hubs_here(ctx.server):
        if hub.name.lower() == key:
            return hub
    raise RpcError(Err.HUB_NOT_FOUND, f"no hub {name!r} on this server")


@admin_method("CreateLink", Scope.HUB)
def create_link(ctx: AdminContext, p: Params) -> dict[str, Any]:
    if _server_type(ctx) != model.SERVER_STANDALONE:
        raise RpcError(Err.LINK_CANT_CREATE_ON_FARM, CLUSTER_CASCADES)
    _hub_here(ctx, p.str("HubName"))
    raise RpcError(Err.NOT_SUPPORTED, NO_CASCADES)


@admin_method("EnumLink", Scope.HUB)
def enum_link(ctx: AdminContext, p: Params) -> dict[str, Any]:
    if _server_type(ctx) != model.SERVER_STANDALONE:
        raise RpcError(Err.NOT_SUPPORTED, CLUSTER_CASCADES)
    hub = _hub_here(ctx, p.str("HubName"))
    return {"HubName_str": hub.name, "LinkList": []}


def _link_method(ctx: AdminContext, p: Params) -> dict[str, Any]:
    if _server_type(ctx) != model.SERVER_STANDALONE:
        raise RpcError(Err.NOT_SUPPORTED, CLUSTER_CASCADES)
    _hub_here(ctx, p.str("HubName"))
    raise RpcError(Err.NOT_SUPPORTED, NO_CASCADES)


def _securenat(settings: bool) -> Handler:
    def handler(ctx: AdminContext, p: Params) -> dict[str, Any]:
        hub = _hub_here(ctx, p.str("HubName"))
        if hub.hub_type == model.HUB_STATIC:
            raise RpcError(Err.NOT_SUPPORTED, "SecureNAT cannot run on a static Virtual Hub")
        if settings and _server_type(ctx) == model.SERVER_MEMBER:
            raise RpcError(Err.NOT_FARM_CONTROLLER, "SecureNAT is set on the cluster controller")
        raise RpcError(Err.NOT_SUPPORTED, NO_SECURENAT)
    return handler


for _name in LINK_METHODS:
    admin_method(_name, Scope.HUB)(_link_method)
for _name in SECURENAT_SETTINGS:
    admin_method(_name, Scope.HUB)(_securenat(settings=True))
for _name in SECURENAT_STATUS:
    admin_method(_name, Scope.HUB)(_securenat(settings=False))
