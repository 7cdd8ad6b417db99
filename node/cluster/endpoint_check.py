"""Can clients reach a member where a redirect sends them? (the controller's CheckEndpoint)

Which ports: a redirected client keeps the port it used at the controller if
the member lists it, else takes the member's first public port (SoftEther's
client; `Redirect.choose_port` in node/softether/handshake.py). So the ports
clients can land on are the first one and those of the member's ports the
controller itself listens on; each of them is checked, and all must answer:
a client sent to a dead one fails. A port no client can be sent to is not
checked (it would only delay the verdict).

What passes: a TLS handshake within `timeout_s` (3 s) at public IP:port
whose certificate is, byte for byte, the member's (the client pins the
redirect's `Cert` and drops a mismatch). The public IP must be IPv4: the
redirect carries an IPv4 address. Nothing is sent after the handshake.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import ssl
from collections.abc import Iterable, Sequence
from typing import Final

from node.state.tlscert import client_context

CHECK_TIMEOUT_S: Final = 3.0


def ports_to_check(public_ports: Sequence[int], controller_ports: Iterable[int]) -> list[int]:
    """The member's public ports a redirected client can use (see the module docstring), in order."""
    if not public_ports:
        return []
    listened = set(controller_ports)
    return [public_ports[0], *(p for p in public_ports[1:] if p in listened)]


def _fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()[:16] if der else "none"


async def check_endpoint(ip: str, ports: Sequence[int], cert: bytes, *,
                         timeout_s: float = CHECK_TIMEOUT_S) -> tuple[bool, str]:
    """(True, "") if every port in `ports` answers TLS at `ip` with certificate
    `cert` (DER); else (False, why), naming the address that failed."""
    try:
        if ipaddress.ip_address(ip).version != 4:
            return False, f"public IP {ip} is not IPv4 (a redirect carries an IPv4 address)"
    except ValueError:
        return False, f"public IP {ip!r} is not an IP address"
    if not cert:
        return False, "the member sent no certificate to compare"
    if not ports:
        return False, "no public port"
    for port in ports:
        ok, why = await _check_port(ip, port, cert, timeout_s)
        if not ok:
            return False, f"{ip}:{port}: {why}"
    return True, ""


async def _check_port(ip: str, port: int, cert: bytes, timeout_s: float) -> tuple[bool, str]:
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(ip, port, ssl=client_context(), ssl_handshake_timeout=timeout_s), timeout_s)
    except asyncio.TimeoutError:
        return False, f"no TLS answer within {timeout_s:g} s"
    except ssl.SSLError as exc:
        return False, f"TLS handshake failed ({exc.reason or exc})"
    except OSError as exc:
        # asyncio words a refusal "Connect call failed (addr)": say what errno says
        return False, (os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__).lower()
    try:
        sslobj = writer.get_extra_info("ssl_object")
        der = (sslobj.getpeercert(binary_form=True) if sslobj is not None else None) or b""
    finally:
        writer.transport.abort()  # nothing to say: no goodbye to wait for
    if der != cert:
        return False, (f"the TLS certificate there is not the member's (SHA-256 {_fingerprint(der)}…, "
                       f"the member's is {_fingerprint(cert)}…)")
    return True, ""
