"""The asyncio edge of the binary admin RPC (the protocol is binary_rpc.py).

The VPN handler hands over a connection whose PACK said `method`=`admin`;
`serve_binary_admin` answers the login over HTTP, then serves framed calls
until the peer closes, each through `run_call`, the same path as JSON-RPC.
Between calls the connection may stay idle as long as the peer likes
(SoftEther sets an infinite timeout; vpncmd's interactive prompt relies on
it); once a frame has started it must be complete within
FRAME_TIMEOUT_S. A bad frame closes only this connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from node.admin.auth import login_refused, login_succeeded, login_wait
from node.admin.api import run_call
from node.admin.binary_rpc import (
    AdminLoginRefused, FrameError, FrameReader, check_login, error_pack, frame, parse_login, reply_pack,
)
from node.admin.dispatch import AdminContext
from node.admin.jsonrpc import RpcError
from node.admin.pack_json import JsonPackError
from node.server import VpnServer
from node.softether.errors import Err, error_name
from node.softether.httpmsg import PackServerChannel
from node.softether.pack import Pack

log = logging.getLogger("vpnd.admin")

FRAME_TIMEOUT_S = 15.0
READ_CHUNK = 64 * 1024


class HttpPackPeer(Protocol):
    """The VPN handler's negotiation: the HTTP PACK channel and its socket."""

    channel: PackServerChannel
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def send(self, pack: Pack) -> None: ...

    def refuse(self, code: int) -> bool: ...

    async def epilogue(self) -> None: ...


async def serve_binary_admin(server: VpnServer, peer: HttpPackPeer, request: Pack, random: bytes,
                             *, client_is_local: bool, peer_name: str,
                             on_login: Callable[[], None] = lambda: None) -> None:
    """Run one admin connection: login (then `on_login`), then calls until
    the peer closes. An address that must wait after failed logins is
    refused (ERR_AUTH_FAILED) without a check."""
    wait = login_wait(server, peer_name)
    try:
        login = parse_login(request)
        if wait > 0:
            raise AdminLoginRefused(Err.AUTH_FAILED, f"retry in {wait:.1f} s")
        hub_admin_of = check_login(server.state.config, login, random, client_is_local=client_is_local)
    except (FrameError, AdminLoginRefused) as e:
        if isinstance(e, AdminLoginRefused):   # a credential: counted where per-address limits apply
            login_refused(server, peer_name, "vpncmd", f"{e.reason} ({error_name(e.code)})", checked=wait <= 0)
        else:
            log.warning("binary admin login from %s malformed: %s", peer_name, e.message)
        peer.refuse(e.code)
        await peer.epilogue()
        return
    login_succeeded(server, peer_name)
    on_login()
    peer.send(Pack())
    await peer.writer.drain()
    who = f"hub {hub_admin_of!r} administrator" if hub_admin_of else "server administrator"
    log.info("binary admin RPC from %s as %s", peer_name, who)
    ctx = AdminContext(server=server, hub_admin_of=hub_admin_of, peer=peer_name)
    frames = FrameReader()
    frames.receive_data(peer.channel.trailing_data)
    try:
        await _serve_calls(ctx, frames, peer.reader, peer.writer)
    except FrameError as e:
        log.info("binary admin RPC from %s closed: %s", peer_name, e.message)
    except TimeoutError:
        log.info("binary admin RPC from %s closed: a frame did not arrive within %g s",
                 peer_name, FRAME_TIMEOUT_S)


async def _serve_calls(ctx: AdminContext, frames: FrameReader, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
    while True:
        call = frames.next_call()
        if call is None:
            if frames.mid_frame:
                async with asyncio.timeout(FRAME_TIMEOUT_S):
                    data = await reader.read(READ_CHUNK)
            else:
                data = await reader.read(READ_CHUNK)
            if not data:
                return
            frames.receive_data(data)
            continue
        try:
            reply = reply_pack(await run_call(ctx, call.method, call.params))
        except RpcError as e:
            reply = error_pack(e.code)
        except JsonPackError:
            log.exception("admin method %.64r gave a result the binary RPC cannot encode", call.method)
            reply = error_pack(Err.INTERNAL_ERROR)
        writer.write(frame(reply))
        await writer.drain()
