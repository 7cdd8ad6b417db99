"""Admin method table and authority checks.

Two authorities, as in SoftEther: the server administrator (X-VPNADMIN-HUBNAME
empty) may call everything; a hub administrator (X-VPNADMIN-HUBNAME = a hub,
with that hub's admin password) may call only hub-scoped methods, and only
for its own hub (ERR_NOT_ENOUGH_RIGHT otherwise). Method names match
case-insensitively (AdminDispatch uses StrCmpi).

Most methods are synchronous: they read and change this node's state and
answer. A method that must await something (the controller gathering
sessions from its members over the bus) is a coroutine registered with
`async_admin_method`; the API serves every call through `dispatch_async`,
which awaits those and calls the others directly. `dispatch` is the
synchronous path for synchronous methods only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

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
AsyncHandler = Callable[[AdminContext, Params], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    scope: Scope
    handler: Handler | None = None
    """A synchronous method; None for a coroutine method."""
    coroutine: AsyncHandler | None = None
    """A method that awaits (e.g. the bus); None for a synchronous one."""


METHODS: dict[str, Method] = {}


def admin_method(name: str, scope: Scope) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        METHODS[name.lower()] = Method(name, scope, handler=fn)
        return fn
    return register


def async_admin_method(name: str, scope: Scope) -> Callable[[AsyncHandler], AsyncHandler]:
    """Register a coroutine method (served by `dispatch_async` only)."""
    def register(fn: AsyncHandler) -> AsyncHandler:
        METHODS[name.lower()] = Method(name, scope, coroutine=fn)
        return fn
    return register


def _checked(ctx: AdminContext, method_name: str, raw_params: dict[str, Any]) -> tuple[Method, Params]:
    """The method and its params, after the authority checks."""
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
    return method, params


def dispatch(ctx: AdminContext, method_name: str, raw_params: dict[str, Any]) -> dict[str, Any]:
    """Run one synchronous admin call; raises RpcError (or InvalidParams) on
    failure, TypeError for a coroutine method (use dispatch_async)."""
    method, params = _checked(ctx, method_name, raw_params)
    if method.handler is None:
        raise TypeError(f"{method.name} is a coroutine method: call dispatch_async")
    return method.handler(ctx, params)


async def dispatch_async(ctx: AdminContext, method_name: str, raw_params: dict[str, Any]) -> dict[str, Any]:
    """Run one admin call of either kind; raises RpcError (or InvalidParams) on failure."""
    method, params = _checked(ctx, method_name, raw_params)
    if method.coroutine is not None:
        return await method.coroutine(ctx, params)
    assert method.handler is not None
    return method.handler(ctx, params)
