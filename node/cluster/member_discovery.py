"""Bus discovery, the member's side: ask the controller's HTTPS listener where
its bus is and which CURVE key it has (CLUSTER.md decision 1).

    GET https://<ControllerName>:<ControllerPort>/vpncluster/bus
    → 200 {"bus_port": N, "controller_key": "<z85>", "version": 1}

TLS is not verified, as SoftEther's member does not verify the controller's
certificate: the answer is only a hint. Trust comes from the pinned key and
the join proof over both CURVE keys (controller/joinauth.py). The same TCP
connection tells us the controller's address (for GetFarmConnectionStatus)
and our own local address towards it: the public IP a member announces when
none is configured ("the address it used to reach the controller").

Everything is bounded: one request, `timeout_s` for the whole exchange, an
answer of at most MAX_ANSWER_BYTES. Every failure is a DiscoveryFailed with
the SoftEther error number the member's status then shows.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass

import h11

from node.softether.errors import Err
from node.state.tlscert import client_context
from vpnbus.keys import is_key_text

PATH = "/vpncluster/bus"
DISCOVERY_VERSION = 1
MAX_ANSWER_BYTES = 16 * 1024
TIMEOUT_S = 5.0


class DiscoveryFailed(Exception):
    """Discovery did not give a usable answer; `code` is the SoftEther error
    to show (48: unreachable, 46: not a controller, 4: malformed answer).
    The member counts a failed attempt and retries later."""

    def __init__(self, code: Err, text: str) -> None:
        super().__init__(f"{text} (error {int(code)})")
        self.code, self.text = code, text


@dataclass(frozen=True, slots=True)
class BusLocation:
    bus_port: int
    controller_key: str
    """The controller's z85 CURVE public key, as offered (not yet trusted)."""
    controller_ip: str
    """The address we reached the controller at."""
    local_ip: str
    """Our own address on that connection."""


def parse_answer(status: int, body: bytes) -> tuple[int, str]:
    """(bus_port, controller_key) from the discovery answer. Raises DiscoveryFailed."""
    if status == 404:
        raise DiscoveryFailed(Err.NOT_FARM_CONTROLLER, "the server is not a cluster controller")
    if status != 200:
        raise DiscoveryFailed(Err.PROTOCOL_ERROR, f"discovery answered HTTP {status}")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise DiscoveryFailed(Err.PROTOCOL_ERROR, "discovery answer is not JSON") from None
    if not isinstance(doc, dict):
        raise DiscoveryFailed(Err.PROTOCOL_ERROR, "discovery answer is not a JSON object")
    if doc.get("version") != DISCOVERY_VERSION:
        raise DiscoveryFailed(Err.PROTOCOL_ERROR, f"discovery version {doc.get('version')!r} "
                                                  f"(this member speaks {DISCOVERY_VERSION})")
    port, key = doc.get("bus_port"), doc.get("controller_key")
    if type(port) is not int or not 0 < port < 65536:
        raise DiscoveryFailed(Err.PROTOCOL_ERROR, "discovery answer has no valid bus_port")
    if not isinstance(key, str) or not is_key_text(key):
        raise DiscoveryFailed(Err.PROTOCOL_ERROR, "discovery answer has no valid controller_key")
    return port, key


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    host: str) -> tuple[int, bytes]:
    conn = h11.Connection(h11.CLIENT)
    writer.write(conn.send(h11.Request(method="GET", target=PATH,
                                       headers=[("Host", host), ("Connection", "close")]))
                 + conn.send(h11.EndOfMessage()))
    await writer.drain()
    status, body = 0, bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            chunk = await reader.read(4096)
            conn.receive_data(chunk)  # b"" = EOF; h11 then errors or ends the body
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_ANSWER_BYTES:
                raise DiscoveryFailed(Err.PROTOCOL_ERROR, "discovery answer too large")
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return status, bytes(body)


async def discover(host: str, port: int, timeout_s: float = TIMEOUT_S) -> BusLocation:
    """Ask the controller at host:port where its bus is. Raises DiscoveryFailed."""
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port, ssl=client_context(),
                                                           server_hostname=None)
            peer, local = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
            status, body = await _exchange(reader, writer, host)
    except TimeoutError:
        raise DiscoveryFailed(Err.CONNECT_TO_FARM_CONTROLLER,
                              f"no discovery answer from {host}:{port} within {timeout_s:g} s") from None
    except (OSError, ssl.SSLError) as exc:
        raise DiscoveryFailed(Err.CONNECT_TO_FARM_CONTROLLER,
                              f"cannot reach {host}:{port}: {exc.strerror or exc}") from None
    except h11.ProtocolError as exc:
        raise DiscoveryFailed(Err.PROTOCOL_ERROR, f"bad HTTP from {host}:{port}: {exc}") from None
    finally:
        if writer is not None:
            writer.close()
    bus_port, key = parse_answer(status, body)
    return BusLocation(bus_port=bus_port, controller_key=key,
                       controller_ip=peer[0], local_ip=local[0])
