"""node/cluster/endpoint_check: which ports a redirected client can use, and
the verdicts that need no TLS peer (a closed port, a bad address, no
certificate). The certificate comparison over real TLS is in
test_controller_role.py."""

from __future__ import annotations

import asyncio
import socket

import pytest

from node.cluster.endpoint_check import check_endpoint, ports_to_check

pytestmark = pytest.mark.timeout(30)


def test_ports_a_redirected_client_can_use():
    # The first port, and any the client may keep because the controller listens on it too.
    assert ports_to_check([5555, 443, 992], [443, 8443]) == [5555, 443]
    assert ports_to_check([5555, 443], []) == [5555]
    assert ports_to_check([443], [443]) == [443]
    assert ports_to_check([], [443]) == []


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("ip, ports, cert, why", [
    ("::1", [443], b"der", "public IP ::1 is not IPv4 (a redirect carries an IPv4 address)"),
    ("not-an-ip", [443], b"der", "public IP 'not-an-ip' is not an IP address"),
    ("127.0.0.1", [443], b"", "the member sent no certificate to compare"),
    ("127.0.0.1", [], b"der", "no public port"),
])
def test_verdicts_without_a_connection(ip, ports, cert, why):
    assert asyncio.run(check_endpoint(ip, ports, cert)) == (False, why)


def test_a_closed_port_is_named_in_the_reason():
    port = closed_port()
    assert asyncio.run(check_endpoint("127.0.0.1", [port], b"der")) == (False, f"127.0.0.1:{port}: connection refused")


def test_a_port_that_accepts_but_never_answers_tls_times_out():
    async def main():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)  # TCP only, silent
        port = server.sockets[0].getsockname()[1]
        try:
            return port, await check_endpoint("127.0.0.1", [port], b"der", timeout_s=0.3)
        finally:
            server.close()
    port, verdict = asyncio.run(main())
    assert verdict == (False, f"127.0.0.1:{port}: no TLS answer within 0.3 s")
