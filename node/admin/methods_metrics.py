"""The scrape credential of GET /metrics (vpncluster methods; SoftEther has
no metrics, so it answers these with ERR_NOT_SUPPORTED).

- SetMetricsCredential: `PlainTextPassword_str` becomes the credential a
  monitoring system sends (`Authorization: Bearer <it>`, or Basic with any
  user name); it is stored only as SHA0(it), as the admin password is, so a
  scraper never holds the admin password. An empty one turns the endpoint
  off (404 again).
- GetMetricsCredential: whether one is set (`Enabled_bool`) and where the
  endpoint is; never the hash.
"""

from __future__ import annotations

from typing import Any

from node.admin.dispatch import AdminContext, Scope, admin_method
from node.admin.jsonrpc import RpcError
from node.admin.jsonvalue import Params
from node.metrics import MAX_CREDENTIAL_CHARS, METRICS_PATH
from node.softether.errors import Err
from node.softether.sha0 import hash_admin_password
from node.state import model


@admin_method("SetMetricsCredential", Scope.SERVER)
def set_metrics_credential(ctx: AdminContext, p: Params) -> dict[str, Any]:
    plain = p.str("PlainTextPassword")
    if len(plain) > MAX_CREDENTIAL_CHARS:
        raise RpcError(Err.INVALID_PARAMETER,
                       f"PlainTextPassword_str: longer than {MAX_CREDENTIAL_CHARS} characters")
    hashed = hash_admin_password(plain) if plain else b""

    def apply(config: model.Server) -> None:
        config.metrics_password_hash = hashed
    ctx.server.state.change(apply)
    return _state(ctx.server.state.config)


@admin_method("GetMetricsCredential", Scope.SERVER)
def get_metrics_credential(ctx: AdminContext, p: Params) -> dict[str, Any]:
    return _state(ctx.server.state.config)


def _state(config: model.Server) -> dict[str, Any]:
    return {"Enabled_bool": bool(config.metrics_password_hash), "Path_str": METRICS_PATH}
