"""Call admin methods in-process, as the API would after authentication."""

from __future__ import annotations

from typing import Any

import pytest

import node.admin.api  # noqa: F401  (registers every methods_*.py)
from node.admin.dispatch import AdminContext, dispatch
from node.admin.jsonrpc import RpcError


def call(server, method: str, params: dict[str, Any], hub_admin_of: str | None = None) -> dict[str, Any]:
    return dispatch(AdminContext(server=server, hub_admin_of=hub_admin_of), method, params)


def error_of(server, method: str, params: dict[str, Any], hub_admin_of: str | None = None) -> int:
    """The SoftEther error code the call fails with (fails the test if it succeeds)."""
    with pytest.raises(RpcError) as info:
        call(server, method, params, hub_admin_of)
    return info.value.code
