"""ControllerRole in-process (bus on 127.0.0.1, no listener sockets): the
discovery route, bus port saved once, dynamic hub actions on the controller
itself, config sync into placement, clean stop; ClusterRoles.switch; a
member's public endpoint checked over real TLS."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time

import pytest
from zmq.utils import z85

from controller import messages as msg
from controller.errors import MemberUnknown
from controller.core_io import SetLocalInstance
from controller.registry import ME_ID, EndpointState
from node.cluster.controller_bus import LIVENESS_ENV, liveness_from_env
from node.cluster.controller_role import DISCOVERY_PATH, MAX_SERVER_CERT_BYTES, ControllerRole
from node.admin.methods_farm import convert_hubs
from node.softether.errors import Err
from node.softether.sha0 import hash_admin_password
from node.state import model
from node.state.tlscert import certificate_der, ensure_certificate, server_context
from tests.cluster_fakes import FakeMember, until
from tests.unit.dataplane.fakes import make_server
from vpnbus.endpoint import RemoteError

pytestmark = pytest.mark.timeout(30)


class Refreshes:
    def __init__(self) -> None:
        self.count = 0

    def refresh(self) -> None:
        self.count += 1


def controller_server(tmp_path):
    server = make_server(tmp_path, hubs=[model.Hub("DYN", hub_type=model.HUB_DYNAMIC),
                                         model.Hub("ST", hub_type=model.HUB_STATIC)])

    def setup(config: model.Server) -> None:
        config.listeners = ["127.0.0.1:5555"]
        config.farm.server_type = model.SERVER_CONTROLLER
    server.state.change(setup)
    server.refreshes = Refreshes()  # what the data plane is told
    server.dynamic_instances.watch(server.refreshes.refresh)
    return server


def test_role_life(tmp_path):
    async def main():
        server = controller_server(tmp_path)
        role = ControllerRole(server)
        await role.start()
        try:
            status, headers, body = server.routes[("GET", DISCOVERY_PATH)](None, "peer")
            doc = json.loads(body)
            assert status == 200 and doc == {"bus_port": role.bus_port, "controller_key": role.keys.public,
                                             "version": 1}
            assert server.state.config.farm.bus_port == role.bus_port > 0
            assert role.core.placement.is_dynamic("dyn") and not role.core.placement.is_dynamic("st")
            role._carry_out(SetLocalInstance("DYN", running=True))
            assert server.dynamic_instances == {"dyn"} and server.refreshes.count == 1
            role._carry_out(SetLocalInstance("DYN", running=False))
            assert server.dynamic_instances == set() and server.refreshes.count == 2
            # A hub deleted from the config leaves placement.
            server.state.change(lambda c: c.hubs.pop())
            assert role.core.placement.hub_names() == ["DYN"]
            assert [m.member_id for m in role.listed_members()] == [ME_ID]
            with pytest.raises(MemberUnknown):
                await role.request(99, object())
        finally:
            await role.stop()
        assert ("GET", DISCOVERY_PATH) not in server.routes
        # e.g. a join handled while stop() waits for the requests: nothing new starts
        role._on_config(server.state.config)
        role._pump()
        assert role._timer is None and not role._requests
        # The saved port is used again by the next controller role.
        again = ControllerRole(server)
        await again.start()
        try:
            assert again.bus_port == role.bus_port
        finally:
            await again.stop()
    asyncio.run(main())


def test_switch_role_follows_the_saved_mode(tmp_path):
    async def main():
        server = controller_server(tmp_path)
        role = await server.cluster.switch()
        assert isinstance(role, ControllerRole) and server.cluster.controller is role
        # Nothing was placed here: the data plane already runs what the config says.
        assert server.refreshes.count == 0
        role._carry_out(SetLocalInstance("DYN", running=True))
        server.state.change(lambda c: setattr(c.farm, "server_type", model.SERVER_STANDALONE))
        assert await server.cluster.switch() is None
        assert server.cluster.role is None and server.routes == {}
        # The old role's placement is undone, and the data plane told so.
        assert server.dynamic_instances == set() and server.refreshes.count == 2
    asyncio.run(main())


def test_liveness_setting(monkeypatch):
    monkeypatch.setenv(LIVENESS_ENV, "1.5")
    assert liveness_from_env() == 1.5
    for bad in ("x", "0", "9999"):
        monkeypatch.setenv(LIVENESS_ENV, bad)
        assert liveness_from_env() == 3.0


def test_saved_bus_port_taken_picks_and_saves_another(tmp_path):
    import socket
    async def main():
        server = controller_server(tmp_path)
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            taken = busy.getsockname()[1]
            server.state.change(lambda c: setattr(c.farm, "bus_port", taken))
            role = ControllerRole(server)
            await role.start()
            try:
                assert role.bus_port != taken and server.state.config.farm.bus_port == role.bus_port
            finally:
                await role.stop()
    asyncio.run(main())


def with_joined_member(tmp_path, body) -> None:
    """Run `body(server, role, member)`: a controller role in this process and a FakeMember joined to it."""
    async def main():
        server = controller_server(tmp_path)
        server.state.change(lambda c: setattr(c, "admin_password_hash", hash_admin_password("pw")))
        role = ControllerRole(server)
        await role.start()
        member = FakeMember(0, "pw", hostname="m1")
        try:
            await member.connect_bus(role.bus_port, role.keys.public)
            await member.join()
            await until(lambda: member.pushes)
            await body(server, role, member)
        finally:
            await member.close()
            await role.stop()
    asyncio.run(main())


def test_a_mode_change_pushes_nothing_to_members(tmp_path):
    # SetFarmSetting converts the hubs for the new mode, then stops the role:
    # the role must not push the converted config (no cluster hubs) meanwhile.
    async def body(server, role, member):
        assert {h.name for h in member.pushes[-1].hubs} == {"DYN", "ST"}
        pushes = len(member.pushes)

        def standalone(config: model.Server) -> None:
            convert_hubs(config, model.SERVER_STANDALONE)
            config.farm = model.Farm()
        server.state.change(standalone)
        polls = member.polls
        await until(lambda: member.polls >= polls + 3)  # the push loop had its chances
        assert len(member.pushes) == pushes
    with_joined_member(tmp_path, body)


def test_a_member_that_leaves_twice_is_answered_twice(tmp_path):
    async def body(server, role, member):
        for _ in range(2):
            assert await member.client.request(msg.Leave(reason="mode change"), timeout_s=10) == msg.Ack()
        assert [m.member_id for m in role.listed_members()] == [ME_ID]
        assert await member.client.request(msg.JoinAbort(reason="x"), timeout_s=10) == msg.Ack()
    with_joined_member(tmp_path, body)


def test_a_failing_round_does_not_stop_the_loops(tmp_path, caplog):
    async def main():
        server = controller_server(tmp_path)
        role = ControllerRole(server)
        await role.start()
        ticks, polls = [], []

        def flaky(calls, real):
            def step(*now):
                calls.append(now)
                if len(calls) == 1:
                    raise RuntimeError("a bug in one round")
                return real(*now)
            return step
        role.core.registry.handle_timer = flaky(ticks, role.core.registry.handle_timer)
        role._local_status = flaky(polls, role._local_status)
        try:
            await until(lambda: len(ticks) >= 3 and len(polls) >= 3)
        finally:
            await role.stop()
        assert "liveness tick failed" in caplog.text and "status poll round failed" in caplog.text
    asyncio.run(main())


def test_hellos_of_strangers_are_refused_cheaply(tmp_path, caplog):
    # Any CURVE key may send hellos; the controller keeps each until its proof comes.
    async def main():
        server = controller_server(tmp_path)
        role = ControllerRole(server)
        await role.start()
        stranger = FakeMember(0, "pw", hostname="stranger\nforged log line")
        try:
            await stranger.connect_bus(role.bus_port, role.keys.public)
            await until(lambda: stranger.client.counters.get("handshake_succeeded"))
            hello = dict(nonce=b"n" * 32, hostname="stranger\nforged log line", public_ip="", public_ports=[443],
                         weight=100, max_sessions=0)
            for version, cert in ((msg.PROTOCOL_VERSION, b"c" * (MAX_SERVER_CERT_BYTES + 1)), (1, b"")):
                with pytest.raises(RemoteError) as err:
                    await stranger.client.request(msg.JoinHello(version=version, server_cert=cert, **hello),
                                                  timeout_s=10)
                assert err.value.code == Err.ACCESS_DENIED
            assert not role.core.desk.in_progress(z85.decode(stranger.keys.public), time.monotonic())
        finally:
            await stranger.close()
            await role.stop()
    asyncio.run(main())
    assert "join refused" in caplog.text and "\nforged log line" not in caplog.text


async def tls_listener(cert_dir) -> tuple[asyncio.Server, int, bytes]:
    """A TLS listener on 127.0.0.1 with its own certificate: (server, port, certificate DER)."""
    cert_path, key_path = ensure_certificate(cert_dir)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_context(cert_path, key_path))
    return server, server.sockets[0].getsockname()[1], certificate_der(cert_path)


def test_an_endpoint_with_another_certificate_fails_the_check_then_the_right_one_passes(tmp_path, caplog):
    caplog.set_level(logging.INFO, "vpnd.cluster")
    ports = []
    (tmp_path / "other").mkdir()
    (tmp_path / "member").mkdir()

    async def main():
        other, other_port, other_der = await tls_listener(tmp_path / "other")
        mine, my_port, my_der = await tls_listener(tmp_path / "member")
        ports.append(my_port)
        server = controller_server(tmp_path)
        server.state.change(lambda c: setattr(c, "admin_password_hash", hash_admin_password("pw")))
        role = ControllerRole(server)
        await role.start()
        member = FakeMember(0, "pw", hostname="m1", public_ports=(other_port,), server_cert=my_der)
        try:
            await member.connect_bus(role.bus_port, role.keys.public)
            await member.join()
            entry = role.core.registry.get(member.member_id)
            await until(lambda: entry.endpoint_state is not EndpointState.UNCHECKED)
            assert entry.endpoint_state is EndpointState.FAILED
            assert entry.endpoint_error.startswith(f"127.0.0.1:{other_port}: the TLS certificate there is not "
                                                   "the member's (SHA-256 ")
            assert hashlib.sha256(other_der).hexdigest()[:16] in entry.endpoint_error
            await until(lambda: entry.last_status_at is not None)  # else "awaiting first status" comes first
            why = role.core.registry.candidates(role._now())[-1].unavailable
            assert why == f"endpoint failed: {entry.endpoint_error}"
            # It rejoins with the port where its own certificate answers: checked again, and it passes.
            member.public_ports = (my_port,)
            await member.join()
            await until(lambda: entry.endpoint_state is EndpointState.OK)
            assert entry.endpoint_error == "" and entry.endpoint_checked == ("127.0.0.1", (my_port,), my_der)
        finally:
            await member.close()
            await role.stop()
            for listener in (other, mine):
                listener.close()
                await listener.wait_closed()
    asyncio.run(main())
    assert "the TLS certificate there is not the member's" in caplog.text
    assert f"public endpoint 127.0.0.1 port {ports[0]} verified" in caplog.text
