"""The listeners' TLS cipher (vpncmd ServerCipherGet / ServerCipherSet):
GetServerCipher, SetServerCipher, GetServerCipherList, with SoftEther
5.01's fields (`String_str`) and rules (node/tls_cipher.py): Set needs the
server administrator and a non-empty name, stores it upper-cased in the node
config and applies it to new connections; a name OpenSSL does not accept is
stored as SoftEther stores it, and connections get the default suites."""

from __future__ import annotations

from typing import Any

from node.admin.dispatch import AdminContext, Scope, admin_method
from node.admin.jsonrpc import RpcError
from node.admin.jsonvalue import Params
from node.softether.errors import Err
from node.state import model
from node.tls_cipher import normalized


@admin_method("GetServerCipher", Scope.ANY)
def get_server_cipher(ctx: AdminContext, p: Params) -> dict[str, Any]:
    return {"String_str": ctx.server.state.config.cipher_name}


@admin_method("SetServerCipher", Scope.SERVER)
def set_server_cipher(ctx: AdminContext, p: Params) -> dict[str, Any]:
    name = normalized(p.str("String"))
    if not name:
        raise RpcError(Err.INVALID_PARAMETER, "String_str is empty")

    def apply(config: model.Server) -> None:
        config.cipher_name = name
    ctx.server.state.change(apply)
    if ctx.server.tls_cipher is not None:
        ctx.server.tls_cipher.apply(name)
    return {"String_str": name}


@admin_method("GetServerCipherList", Scope.ANY)
def get_server_cipher_list(ctx: AdminContext, p: Params) -> dict[str, Any]:
    names = ctx.server.tls_cipher.available() if ctx.server.tls_cipher is not None else []
    return {"String_str": ";".join(names)}
