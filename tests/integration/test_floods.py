"""Connection floods against a real vpnd (issue 13, findings 2 and 3): the
memory a node holds for connections that are not VPN sessions is bounded by
its connection caps, during a flood and after it.

The bound: the RSS before the flood plus MAX_UNESTABLISHED_CONNECTIONS
connections at PER_CONNECTION_BUDGET each. What a pending TLS connection
costs vpnd after the fixes is ~60 KiB (a 32 KiB TLS read buffer, OpenSSL's
state, the stream and HTTP objects); before them a connection held a 256 KiB
read buffer from its first byte, and a connection that had posted the VPN
signature was no longer counted at all (4,000 of them grew a node to
1.17 GB). The figures are printed (pytest -s) for the report.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import ssl
import struct
import threading
import time

from node.listener import MAX_UNESTABLISHED_CONNECTIONS
from node.softether.signature import SIGNATURE_BODY, SIGNATURE_CONTENT_TYPE
from node.state.tlscert import client_context

PER_CONNECTION_BUDGET = 128 * 1024
RSS_BOUND_BYTES = MAX_UNESTABLISHED_CONNECTIONS * PER_CONNECTION_BUDGET
SOURCES = [f"127.0.0.{n}" for n in range(2, 10)]   # 8 addresses: under the 256-per-address cap


def _kept_alive_call(conn: http.client.HTTPSConnection, password: str, method: str) -> dict:
    """One admin call on a connection opened before the flood (a new one
    is refused while the cap is full, as in SoftEther)."""
    body = json.dumps({"jsonrpc": "2.0", "id": "t", "method": method, "params": {}}).encode()
    conn.request("POST", "/api/", body=body, headers={"X-VPNADMIN-PASSWORD": password})
    return json.loads(conn.getresponse().read())


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class _RssSampler:
    """The peak RSS of a process while the block runs (sampled every 20 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss(self.pid))

    def __enter__(self) -> "_RssSampler":
        self.peak = _rss(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, _rss(self.pid))


async def _signature_then_wait(port: int, source: str, answered: list[int],
                               held: list[asyncio.StreamWriter]) -> None:
    """A client that posts the VPN signature, reads the hello, and then
    sends nothing (finding 2)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context(), local_addr=(source, 0)), 20)
    except (OSError, asyncio.TimeoutError, ssl.SSLError):
        return   # refused at the cap: closed at once
    held.append(writer)
    try:
        writer.write(b"POST /vpnsvc/connect.cgi HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     + SIGNATURE_CONTENT_TYPE.encode() + b"\r\nContent-Length: "
                     + str(len(SIGNATURE_BODY)).encode() + b"\r\n\r\n" + SIGNATURE_BODY)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
        if head.startswith(b"HTTP/1.1 200"):
            answered.append(1)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass


def test_connections_parked_after_the_signature_stay_under_the_cap(vpnd):
    """Finding 2: 1,300 connections that post the signature and stop: at
    most 1,000 (the cap on connections that are not sessions) get a hello,
    and the node's memory stays under the bound while they are held and
    after they close. A good admin client keeps working throughout."""
    pid = vpnd.proc.pid
    total = 1300
    admin = http.client.HTTPSConnection("127.0.0.1", vpnd.port, timeout=20, context=client_context())
    assert "result" in _kept_alive_call(admin, vpnd.password, "GetServerInfo")
    before = _rss(pid)

    async def flood() -> tuple[int, int]:
        answered: list[int] = []
        held: list[asyncio.StreamWriter] = []
        gate = asyncio.Semaphore(64)

        async def one(i: int) -> None:
            async with gate:
                await _signature_then_wait(vpnd.port, SOURCES[i % len(SOURCES)], answered, held)
        await asyncio.gather(*(one(i) for i in range(total)))
        good = await asyncio.to_thread(_kept_alive_call, admin, vpnd.password, "GetServerInfo")
        assert "result" in good, good
        during = _rss(pid)
        for writer in held:
            writer.transport.abort()
        return len(answered), during

    with _RssSampler(pid) as sampled:
        answered, during = asyncio.run(flood())
    admin.close()
    deadline = time.monotonic() + 30
    while vpnd.call("GetServerStatus").get("result") is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)   # the aborted connections' closes reach vpnd
    after = _rss(pid)
    print(f"\nsignature flood: {total} connections, {answered} answered; RSS before {before >> 20} MiB, "
          f"held {during >> 20} MiB, peak {sampled.peak >> 20} MiB, after {after >> 20} MiB "
          f"(bound +{RSS_BOUND_BYTES >> 20} MiB)")
    assert answered <= MAX_UNESTABLISHED_CONNECTIONS
    assert sampled.peak - before <= RSS_BOUND_BYTES, (before, sampled.peak)
    assert after - before <= RSS_BOUND_BYTES, (before, after)
    assert "result" in vpnd.call("GetServerInfo")


def _client_hello(sock: socket.socket) -> None:
    """Send a TLS ClientHello on `sock` (non-blocking, nothing read back)."""
    bio_in, bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context().wrap_bio(bio_in, bio_out)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    sock.sendall(bio_out.read())


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_tls_connect_then_reset_flood_stays_under_the_bound(vpnd):
    """Finding 3: 4,000 connections that send a ClientHello and reset, 100
    at a time: vpnd's peak and final RSS stay under the bound, and a good
    admin client keeps working."""
    pid = vpnd.proc.pid
    before = _rss(pid)
    rounds, width = 40, 100
    with _RssSampler(pid) as sampled:
        for r in range(rounds):
            socks = []
            for i in range(width):
                s = socket.socket()
                s.bind((SOURCES[i % len(SOURCES)], 0))
                try:
                    s.connect(("127.0.0.1", vpnd.port))
                    _client_hello(s)
                except OSError:
                    s.close()
                    continue
                socks.append(s)
            time.sleep(0.02)   # vpnd reads the hellos and starts its side of the handshakes
            for s in socks:
                _reset(s)
    assert "result" in vpnd.call("GetServerInfo")
    time.sleep(1.0)
    after = _rss(pid)
    print(f"\nconnect-then-reset flood: {rounds * width} connections; RSS before {before >> 20} MiB, "
          f"peak {sampled.peak >> 20} MiB, after {after >> 20} MiB (bound +{RSS_BOUND_BYTES >> 20} MiB)")
    assert sampled.peak - before <= RSS_BOUND_BYTES, (before, sampled.peak)
    assert after - before <= RSS_BOUND_BYTES, (before, after)
