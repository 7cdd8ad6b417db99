"""Call admin methods in-process, as the API would after authentication."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import node.admin.api  # noqa: F401  (registers every methods_*.py)
from node.admin.dispatch import METHODS, AdminContext, dispatch, dispatch_async
from node.admin.jsonrpc import RpcError


async def acall(server, method: str, params: dict[str, Any], hub_admin_of: str | None = None) -> dict[str, Any]:
    """One call from a running event loop (any method, as the API serves it)."""
    return await dispatch_async(AdminContext(server=server, hub_admin_of=hub_admin_of), method, params)


def call(server, method: str, params: dict[str, Any], hub_admin_of: str | None = None) -> dict[str, Any]:
    """One call from synchronous test code: a synchronous method runs with no
    event loop (as before), a coroutine method in its own."""
    found = METHODS.get(method.lower())
    if found is None or found.coroutine is None:
        return dispatch(AdminContext(server=server, hub_admin_of=hub_admin_of), method, params)
    return asyncio.run(acall(server, method, params, hub_admin_of))


def error_of(server, method: str, params: dict[str, Any], hub_admin_of: str | None = None) -> int:
    """The SoftEther error code the call fails with (fails the test if it succeeds)."""
    with pytest.raises(RpcError) as info:
        call(server, method, params, hub_admin_of)
    return info.value.code
