"""The admin API entry point the listener calls: one HTTP request in, one
HTTP answer out (status, headers, body).

Failed logins go through one function, `refuse_login`: it feeds the
per-address backoff (vpnbus/auth_backoff.py: after a few failures an
address waits, and meanwhile its requests are refused without checking the
password) and logs failures in summary, not one line per guess."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import time

import node.admin
from node.admin.auth import AdminAuthFailed, authenticate, credentials
from node.admin.dispatch import AdminContext, dispatch_async
from node.admin.jsonrpc import BadRequest, RpcError, error_body, parse_request, result_body
from node.admin.jsonvalue import InvalidParams
from node.server import VpnServer
from node.softether.errors import Err

log = logging.getLogger("vpnd.admin")

# Every node/admin/methods_*.py registers its methods when imported.
for _module in pkgutil.iter_modules(node.admin.__path__):
    if _module.name.startswith("methods_"):
        importlib.import_module(f"node.admin.{_module.name}")

UNAUTHORIZED_BODY = (b"<html><head><title>401 Unauthorized</title></head><body>"
                     b"<h1>Unauthorized</h1><p>Administrator password required.</p></body></html>")


Response = tuple[int, list[tuple[str, str]], bytes]
UNAUTHORIZED: Response = (401, [("Content-Type", "text/html; charset=utf-8"),
                                ("WWW-Authenticate", 'Basic realm="vpncluster admin"')], UNAUTHORIZED_BODY)


def _ip(peer: str) -> str:
    return peer.rpartition(":")[0].strip("[]") or peer


def credentials_valid(server: VpnServer, headers: dict[str, str], peer: str) -> bool:
    """Whether the headers carry valid admin credentials (no logging, no
    counting): the listener asks before reading a body, to allow a large body
    only then. An address that must wait gets no password check here either."""
    if server.admin_backoff.wait(_ip(peer), time.monotonic()) > 0:
        return False
    try:
        authenticate(server.state.config, *credentials(headers))
    except AdminAuthFailed:
        return False
    return True


def refuse_login(server: VpnServer, peer: str, why: str, *, checked: bool = True) -> Response:
    """The one path of every refused admin login (the 401). `checked`: the
    password was checked and wrong (counted for the caller's address, logged
    in summary); False: refused unchecked while the address must wait."""
    if not checked:
        return UNAUTHORIZED
    line = server.admin_backoff.failed(_ip(peer), time.monotonic())
    if line is not None:
        log.warning("admin login refused from %s: %s%s", peer, why, line.suffix())
    return UNAUTHORIZED


async def handle_admin_post(server: VpnServer, headers: dict[str, str], body: bytes, peer: str) -> Response:
    """Serve POST /api/ (a coroutine: some methods await the cluster bus).
    Wrong credentials: 401 with an HTML body (SoftEther
    does the same); everything else: 200 with a JSON-RPC result or error."""
    json_headers = [("Content-Type", "application/json")]
    wait = server.admin_backoff.wait(_ip(peer), time.monotonic())
    if wait > 0:
        # not a failure (the wait does not grow); the next logged line counts it
        return refuse_login(server, peer, f"retry in {wait:.1f} s", checked=False)
    try:
        hub, password = credentials(headers)
        hub_admin_of = authenticate(server.state.config, hub, password)
    except AdminAuthFailed as exc:
        return refuse_login(server, peer, str(exc))
    server.admin_backoff.succeeded(_ip(peer))
    try:
        request = parse_request(body)
    except BadRequest as bad:
        return 200, json_headers, error_body(bad.id, bad.error)
    ctx = AdminContext(server=server, hub_admin_of=hub_admin_of, peer=peer)
    try:
        result = await dispatch_async(ctx, request.method, request.params)
    except RpcError as exc:
        return 200, json_headers, error_body(request.id, exc)
    except InvalidParams as exc:
        return 200, json_headers, error_body(request.id, RpcError(Err.INVALID_PARAMETER, str(exc)))
    except Exception:
        # A bug in one handler must cost one call, not the daemon.
        log.exception("admin method %s failed", request.method)
        return 200, json_headers, error_body(request.id, RpcError(Err.INTERNAL_ERROR))
    return 200, json_headers, result_body(request.id, result)
