"""The admin API entry point the listener calls: one HTTP request in, one
HTTP answer out (status, headers, body).

Failed logins go through one function, auth.login_refused (as the binary
admin RPC's and GET /metrics'): it feeds the per-address backoff
(vpnbus/auth_backoff.py: after a few failures an address waits, and
meanwhile its requests are refused without checking the password) and logs
failures in summary, not one line per guess."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import time
from typing import Any

import node.admin
from node.admin.auth import AdminAuthFailed, authenticate, credentials, login_refused, login_succeeded, login_wait
from node.admin.dispatch import METHODS, AdminContext, dispatch_async
from node.admin.jsonrpc import BadRequest, RpcError, error_body, parse_request, result_body
from node.admin.jsonvalue import InvalidParams
from node.metrics import UNKNOWN_METHOD
from node.server import VpnServer
from node.softether.errors import Err, error_name

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


def credentials_valid(server: VpnServer, headers: dict[str, str], peer: str) -> bool:
    """Whether the headers carry valid admin credentials (no logging, no
    counting): the listener asks before reading a body, to allow a large body
    only then. An address that must wait gets no password check here either."""
    if login_wait(server, peer) > 0:
        return False
    try:
        authenticate(server.state.config, *credentials(headers))
    except AdminAuthFailed:
        return False
    return True


async def handle_admin_post(server: VpnServer, headers: dict[str, str], body: bytes, peer: str) -> Response:
    """Serve POST /api/ (a coroutine: some methods await the cluster bus).
    Wrong credentials: 401 with an HTML body (SoftEther
    does the same); everything else: 200 with a JSON-RPC result or error."""
    json_headers = [("Content-Type", "application/json")]
    wait = login_wait(server, peer)
    if wait > 0:
        # not a failure (the wait does not grow); the next logged line counts it
        login_refused(server, peer, "api", f"retry in {wait:.1f} s", checked=False)
        return UNAUTHORIZED
    try:
        hub, password = credentials(headers)
        hub_admin_of = authenticate(server.state.config, hub, password)
    except AdminAuthFailed as exc:
        login_refused(server, peer, "api", str(exc))
        return UNAUTHORIZED
    login_succeeded(server, peer)
    started = time.perf_counter()
    try:
        request = parse_request(body)
    except BadRequest as bad:
        server.metrics.admin_call(UNKNOWN_METHOD, error_name(bad.error.code), time.perf_counter() - started)
        return 200, json_headers, error_body(bad.id, bad.error)
    ctx = AdminContext(server=server, hub_admin_of=hub_admin_of, peer=peer)
    try:
        result = await run_call(ctx, request.method, request.params)
    except RpcError as exc:
        return 200, json_headers, error_body(request.id, exc)
    return 200, json_headers, result_body(request.id, result)


async def run_call(ctx: AdminContext, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """One admin call for either encoding (JSON-RPC here, binary RPC in
    binary_api.py), counted in the node's metrics; every failure is an
    RpcError carrying SoftEther's code."""
    started = time.perf_counter()
    known = METHODS.get(method.lower())
    label = known.name if known is not None else UNKNOWN_METHOD   # a bounded label: not what was sent
    try:
        result = await dispatch_async(ctx, method, params)
    except RpcError as exc:
        error = exc
    except InvalidParams as exc:
        error = RpcError(Err.INVALID_PARAMETER, str(exc))
    except Exception:
        # A bug in one handler must cost one call, not the daemon.
        log.exception("admin method %.64r failed", method)
        error = RpcError(Err.INTERNAL_ERROR)
    else:
        ctx.server.metrics.admin_call(label, "ok", time.perf_counter() - started)
        return result
    ctx.server.metrics.admin_call(label, error_name(error.code), time.perf_counter() - started)
    raise error
