"""Admin method table and authority checks.

Two authorities, as in SoftEther: the server administrator (X-VPNADMIN-HUBNAME
empty) may call everything; a hub administrator (X-VPNADMIN-HUBNAME = a hub,
with that hub's admin password) may call only hub-scoped methods, and only
for its own hub (ERR_NOT_ENOUGH_RIGHT otherwise). Method names match
case-insensitively (AdminDispatch uses StrCmpi).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from node.admin.jsonrpc import RpcError
from node.admin.jsonvalue import Params
from node.softether.errors import Err

if TYPE_CHECKING:
    from node.server import VpnServer


class Scope(enum.Enum):
    SERVER = "server administrator only"
    HUB = "server administrator, or the administrator of the hub named in HubName_str"
    ANY = "any administrator"


@dataclass(frozen=True, slots=True)
class AdminContext:
    server: "VpnServer"
    hub_admin_of: str | None = None   # None = server administrator
    peer: str = ""

    @property
    def is_server_admin(self) -> bool:
        return self.hub_admin_of is None


Handler = Callable[[AdminContext, Params], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    handler: Handler
    scope: Scope


METHODS: dict[str, Method] = {}


def admin_method(name: str, scope: Scope) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        METHODS[name.lower()] = Method(name, fn, scope)
        return fn
    return register


def dispatch(ctx: AdminContext, method_name: str, raw_params: dict[str, Any]) -> dict[str, Any]:
    """Run one admin call; raises RpcError (or InvalidParams) on failure."""
    method = METHODS.get(method_name.lower())
    if method is None:
        raise RpcError(Err.NOT_SUPPORTED, f"unknown method {method_name!r}")
    params = Params(raw_params)
    if not ctx.is_server_admin:
        if method.scope is Scope.SERVER:
            raise RpcError(Err.NOT_ENOUGH_RIGHT, f"{method.name} is for the server administrator")
        if method.scope is Scope.HUB:
            hub = params.str("HubName")
            if hub.lower() != (ctx.hub_admin_of or "").lower():
                raise RpcError(Err.NOT_ENOUGH_RIGHT,
                               f"a hub administrator of {ctx.hub_admin_of!r} cannot manage hub {hub!r}")
    return method.handler(ctx, params)
