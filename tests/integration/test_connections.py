"""The listener's connection list and TLS cipher through the admin API, on a
real vpnd: EnumConnection / GetConnectionInfo / DisconnectConnection while a
userspace VPN session is up, and SetServerCipher deciding the TLS 1.2 suite
of new connections (TLS 1.3 unaffected), kept across a restart."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest

from node.softether.errors import Err
from node.connections import TYPE_ADMIN_RPC, TYPE_INIT
from tools.vpnclient.client import UserspaceClient
from tools.vpnclient.retry import RetryPolicy

pytestmark = pytest.mark.timeout(90)
RETRY = RetryPolicy(max_retries=5, base_s=0.1, cap_s=0.5)


def tls_connect(port: int, *, version: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLSocket:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))


def result(answer: dict) -> dict:
    assert "result" in answer, answer
    return answer["result"]


def test_connections_listed_and_one_disconnected_while_a_session_runs(vpnd):
    result(vpnd.call("CreateHub", {"HubName_str": "conn", "Online_bool": True}))
    result(vpnd.call("CreateUser", {"HubName_str": "conn", "Name_str": "alice", "AuthType_u32": 1,
                                    "Auth_Password_str": "pw-alice"}))

    async def main() -> None:
        async with UserspaceClient(f"127.0.0.1:{vpnd.port}", "conn", "alice", "pw-alice", retry=RETRY) as a:
            await a.wait_connected(20)
            held = await asyncio.to_thread(tls_connect, vpnd.port, version=ssl.TLSVersion.TLSv1_3)
            try:
                await asyncio.to_thread(check_and_disconnect, held, a.status.session_name)
            finally:
                held.close()

    def check_and_disconnect(held: ssl.SSLSocket, session: str) -> None:
        rows = result(vpnd.call("EnumConnection"))["ConnectionList"]
        port = held.getsockname()[1]
        # the session's connection left the list at login (as SoftEther); the held
        # one is negotiating; the rest are the admin calls' own connections
        mine = [r for r in rows if r["Port_u32"] == port]
        assert len(mine) == 1 and mine[0]["Type_u32"] == TYPE_INIT, rows
        assert {r["Type_u32"] for r in rows if r is not mine[0]} <= {TYPE_ADMIN_RPC}, rows
        name = mine[0]["Name_str"]
        assert name.startswith("CID-") and mine[0]["Ip_ip"] == "127.0.0.1"
        info = result(vpnd.call("GetConnectionInfo", {"Name_str": name.lower()}))
        assert (info["Name_str"], info["Port_u32"], info["Type_u32"]) == (name, port, TYPE_INIT)
        assert result(vpnd.call("DisconnectConnection", {"Name_str": name}))["Name_str"] == name
        assert held.recv(1) == b""   # closed by vpnd
        assert vpnd.call("GetConnectionInfo", {"Name_str": name})["error"]["code"] == Err.OBJECT_NOT_FOUND
        assert vpnd.call("DisconnectConnection", {"Name_str": ""})["error"]["code"] == Err.INVALID_PARAMETER
        sessions = result(vpnd.call("EnumSession", {"HubName_str": "conn"}))["SessionList"]
        assert [s["Name_str"] for s in sessions] == [session]   # the session is untouched
        # server administrator only
        result(vpnd.call("SetHub", {"HubName_str": "conn", "AdminPasswordPlainText_str": "hub-pw",
                                    "Online_bool": True}))
        refused = vpnd.call("EnumConnection", {"HubName_str": "conn"}, hub="conn", password="hub-pw")
        assert refused["error"]["code"] == Err.NOT_ENOUGH_RIGHT

    asyncio.run(main())


def test_server_cipher_sets_the_tls12_suite_and_survives_a_restart(vpnd):
    assert result(vpnd.call("GetServerCipher"))["String_str"] == "~DEFAULT~"
    listed = result(vpnd.call("GetServerCipherList"))["String_str"].split(";")
    assert "ECDHE-RSA-AES128-GCM-SHA256" in listed and "TLS_AES_256_GCM_SHA384" in listed
    assert result(vpnd.call("SetServerCipher", {"String_str": "ecdhe-rsa-aes128-gcm-sha256"})) == {
        "String_str": "ECDHE-RSA-AES128-GCM-SHA256"}

    def check_applied() -> None:
        with tls_connect(vpnd.port, version=ssl.TLSVersion.TLSv1_2) as s:
            assert s.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"
        with pytest.raises(ssl.SSLError):   # a TLS 1.2 client without that suite
            tls_connect(vpnd.port, version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES256-GCM-SHA384")
        with tls_connect(vpnd.port, version=ssl.TLSVersion.TLSv1_3) as s:   # TLS 1.3 unaffected
            assert s.version() == "TLSv1.3"
    check_applied()
    vpnd.stop()
    vpnd.start()
    assert result(vpnd.call("GetServerCipher"))["String_str"] == "ECDHE-RSA-AES128-GCM-SHA256"
    check_applied()
    # a name OpenSSL does not know is kept, as SoftEther keeps it; connections get the default suites
    result(vpnd.call("SetServerCipher", {"String_str": "no-such-cipher"}))
    assert result(vpnd.call("GetServerCipher"))["String_str"] == "NO-SUCH-CIPHER"
    with tls_connect(vpnd.port, version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES256-GCM-SHA384") as s:
        assert s.cipher()[0] == "ECDHE-RSA-AES256-GCM-SHA384"
    assert vpnd.call("SetServerCipher", {"String_str": ""})["error"]["code"] == Err.INVALID_PARAMETER
