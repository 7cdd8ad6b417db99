"""GET /metrics (node/metrics.py) of in-process nodes on loopback: a cluster
controller with a real listener, data plane and VPN handler, a real member
role joined to it and a scripted member that vanishes; sessions, logins,
dropped frames, admin calls and an eviction, then every metric with its
labels in the scrape. Also the scrape credential (404, 401, Bearer, Basic),
its admin methods, and drops that outlive their session."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import re
import socket
import ssl
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.member_life import MemberState
from node.cluster.controller_bus import LIVENESS_ENV
from node.cluster.member_role import MemberRole
from node.dataplane.hubs import RunningHub
from node.dataplane.service import DataPlane
from node.dataplane.vpn_handler import VpnHandler
from node.listener import Listener
from node.metrics import handle_scrape
from node.server import VpnServer
from node.softether.errors import Err
from node.softether.handshake import ServerError
from node.softether.sha0 import hash_admin_password, hash_password
from node.state import model
from node.state.node_state import NodeState
from node.state.tlscert import certificate_der, ensure_certificate, server_context
from tests.cluster_fakes import FakeMember, until
from tests.unit.admin.admin_call import call, error_of
from tests.unit.dataplane.fakes import BCAST, FakeSession, ipv4_frame, mac, make_server
from tools.vpnclient.connection import Connection, connect
from tools.vpnclient.login import PasswordLogin

pytestmark = pytest.mark.timeout(60)

ADMIN_PW, SCRAPE_PW, HUB = "admin-pw", "scrape-pw", "Sales"
Samples = dict[tuple[str, frozenset], float]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def https(port: int, method: str, path: str, headers: dict[str, str] | None = None,
          body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ssl._create_unverified_context())
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


async def admin(port: int, method: str, params: dict, password: str = ADMIN_PW) -> tuple[int, dict | bytes]:
    body = json.dumps({"jsonrpc": "2.0", "id": "1", "method": method, "params": params}).encode()
    status, raw = await asyncio.to_thread(https, port, "POST", "/api/", {"X-VPNADMIN-PASSWORD": password}, body)
    return status, json.loads(raw) if status == 200 else raw


async def scrape(port: int, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    return await asyncio.to_thread(https, port, "GET", "/metrics", headers)


def parse(text: bytes) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The one sample `name` with exactly these labels (KeyError naming it if absent)."""
    key = (name, frozenset(labels.items()))
    if key not in samples:
        raise KeyError(f"{name}{labels} not in the scrape")
    return samples[key]


def dashboard_metrics() -> set[str]:
    """The vpncluster_* names the Grafana dashboard's queries and annotations read."""
    dashboard = Path(__file__).resolve().parents[2] / "tools" / "deploy" / "grafana-dashboard.json"
    names = set(re.findall(r"\bvpncluster_[a-z_]+", dashboard.read_text()))
    assert len(names) > 20
    return names


class Node:
    """A vpnd in this process: state, listener, data plane, VPN handler, cluster role."""

    def __init__(self, state_dir: Path, config: model.Server) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        cert, key = ensure_certificate(state_dir)
        self.port = _free_port()
        config.listeners = [f"127.0.0.1:{self.port}"]
        self.server = VpnServer(state=NodeState.create(state_dir, config), state_dir=state_dir,
                                cert_der=certificate_der(cert))
        self.listener = Listener(self.server, server_context(cert, key))
        self.listener.vpn_handler = VpnHandler(self.server)
        self.dataplane = DataPlane(self.server)
        self.server.dynamic_instances.watch(self.dataplane.refresh)

    async def start(self) -> "Node":
        await self.dataplane.start()
        await self.listener.listen("127.0.0.1", self.port)
        await self.server.cluster.switch()
        return self

    async def stop(self) -> None:
        await self.server.cluster.stop()
        await self.dataplane.stop()
        await self.listener.close()


def controller_config() -> model.Server:
    users = [model.User("alice", hashed_key=hash_password("alice", "a-pw")),
             model.User("bob", hashed_key=hash_password("bob", "b-pw"))]
    return model.Server(admin_password_hash=hash_admin_password(ADMIN_PW), listeners=[],
                        farm=model.Farm(server_type=model.SERVER_CONTROLLER),
                        hubs=[model.Hub(HUB, hub_type=model.HUB_STATIC, users=users)])


def member_config(controller_port: int) -> model.Server:
    return model.Server(admin_password_hash=hash_admin_password("member-pw"), listeners=[],
                        farm=model.Farm(server_type=model.SERVER_MEMBER, controller_host="127.0.0.1",
                                        controller_port=controller_port,
                                        member_password_hash=hash_admin_password(ADMIN_PW), public_ports=[443]))


async def session(port: int, user: str, password: str) -> Connection:
    _, conn = await connect("127.0.0.1", port, hub=HUB, username=user,
                            credentials=PasswordLogin.from_plain(user, password), timeout_s=10)
    assert conn is not None
    return conn


def test_every_metric_with_its_labels_after_sessions_logins_drops_and_an_eviction(tmp_path, monkeypatch):
    monkeypatch.setenv(LIVENESS_ENV, "1.0")

    async def main() -> None:
        ctl = await Node(tmp_path / "ctl", controller_config()).start()
        (tmp_path / "m1").mkdir()
        member_server = VpnServer(state=NodeState.create(tmp_path / "m1", member_config(ctl.port)),
                                  state_dir=tmp_path / "m1", cert_der=b"DER")
        member_server.hostname = "member-1"
        member_role = MemberRole(member_server, retry_interval_s=0.3, jitter_s=0.05, liveness_timeout_s=1.0,
                                 request_timeout_s=2.0, discovery_timeout_s=2.0)
        member_server.cluster._role = member_role   # as ClusterRoles.switch installs a started role
        role = ctl.server.cluster.controller
        assert role is not None
        ghost = FakeMember(0, ADMIN_PW, hostname="ghost")
        conns: list[Connection] = []
        try:
            # No credential yet: the endpoint does not exist.
            assert (await scrape(ctl.port))[0] == 404
            assert (await asyncio.to_thread(https, ctl.port, "POST", "/metrics", None, b""))[0] == 405
            status, doc = await admin(ctl.port, "SetMetricsCredential", {"PlainTextPassword_str": SCRAPE_PW})
            assert status == 200 and doc["result"]["Enabled_bool"] is True
            assert (await admin(ctl.port, "GetServerInfo", {}, password="wrong"))[0] == 401
            assert (await admin(ctl.port, "NoSuchMethod", {}))[0] == 200

            await member_role.start()
            await ghost.connect_bus(role.bus_port, role.keys.public)
            await ghost.join()
            ghost_entry = role.core.registry.get(ghost.member_id)
            await until(lambda: member_role.status().link.online)
            await until(lambda: ghost_entry.last_status_at is not None and len(role.core.registry.members()) == 3)

            # Two sessions (kept on the controller: no member's endpoint answers), a refused login.
            conns = [await session(ctl.port, "alice", "a-pw"), await session(ctl.port, "bob", "b-pw")]
            with pytest.raises(ServerError) as refused:
                await session(ctl.port, "alice", "wrong")
            assert refused.value.code == Err.AUTH_FAILED
            running = ctl.server.running_hub(HUB)
            assert running is not None
            a, b = conns
            a.send_frames([ipv4_frame(BCAST, mac(1), b"\x0a\0\0\x01", b"\x0a\0\0\x02")])   # learned, to bob
            b.send_frames([ipv4_frame(mac(1), mac(2), b"\x0a\0\0\x02", b"\x0a\0\0\x01")])  # to alice
            await until(lambda: running.mac_table_size() == 2)
            a.send_frames([ipv4_frame(mac(1), mac(3), b"\x0a\0\0\x03", b"\x0a\0\0\x01")])  # back to its own port
            await until(lambda: running.dropped_frames().no_destination == 1)

            # The ghost vanishes without a word: evicted when its connection closes.
            await ghost.close()
            await until(lambda: ghost_entry.state is MemberState.EVICTED)
            # the controller's own entry counts the sessions at its next status poll
            await until(lambda: role.core.registry.me.sessions == 2)

            assert (await scrape(ctl.port, {"Authorization": "Bearer wrong"}))[0] == 401
            assert (await scrape(ctl.port))[0] == 401
            first = parse((await scrape(ctl.port, {"Authorization": f"Bearer {SCRAPE_PW}"}))[1])
            assert not any(name == "vpncluster_metrics_build_seconds" for name, _ in first)   # nothing built before
            status, body = await scrape(ctl.port, {"Authorization": f"Bearer {SCRAPE_PW}"})
            assert status == 200
            s = parse(body)

            hub = {"hub": HUB}
            assert value(s, "vpncluster_hub_sessions", **hub) == 2
            assert value(s, "vpncluster_hub_tcp_connections", **hub) == 2
            assert value(s, "vpncluster_hub_received_packets_total", **hub) == 3
            assert value(s, "vpncluster_hub_sent_packets_total", **hub) == 2
            assert value(s, "vpncluster_hub_received_bytes_total", **hub) >= 3 * 60
            assert value(s, "vpncluster_hub_sent_bytes_total", **hub) >= 2 * 60
            assert value(s, "vpncluster_hub_mac_table_entries", **hub) == 3
            assert value(s, "vpncluster_hub_ip_table_entries", **hub) == 3
            drops = {c: value(s, "vpncluster_hub_dropped_frames_total", hub=HUB, cause=c)
                     for c in ("queue_full", "oversize", "no_destination", "mac_table_full", "malformed")}
            assert drops == {"queue_full": 0, "oversize": 0, "no_destination": 1, "mac_table_full": 0, "malformed": 0}
            assert value(s, "vpncluster_vpn_logins_total", result="ok") == 2
            assert value(s, "vpncluster_vpn_logins_total", result="ERR_AUTH_FAILED") == 1
            assert value(s, "vpncluster_cluster_role", role="controller") == 1
            assert value(s, "vpncluster_cluster_role", role="member") == 0

            members = {m.hostname: str(m.member_id) for m in role.core.registry.members()}
            me = {"member": "1", "hostname": ctl.server.hostname}
            m1 = {"member": members["member-1"], "hostname": "member-1"}
            gone = {"member": members["ghost"], "hostname": "ghost"}
            for labels, state in ((me, "online"), (m1, "online"), (gone, "evicted")):
                assert value(s, "vpncluster_member_state", **labels, state=state) == 1
                assert value(s, "vpncluster_member_state", **labels, state="suspect") == 0
                assert value(s, "vpncluster_member_weight", **labels) == 100
                assert value(s, "vpncluster_member_points", **labels) > 0
            assert value(s, "vpncluster_member_sessions", **me) == 2
            assert value(s, "vpncluster_member_tcp_connections", **me) == 2
            assert value(s, "vpncluster_member_hub_sessions", **me, hub=HUB) == 2
            assert 0 <= value(s, "vpncluster_member_last_poll_age_seconds", **m1) < 5
            serial = ctl.server.state.config.serial
            assert value(s, "vpncluster_config_serial") == serial
            # members acknowledge the serial of the cluster configuration's last change (hubs and users)
            cluster_serial = role.core.sync.serial
            assert 0 <= cluster_serial <= serial
            assert value(s, "vpncluster_member_config_serial", **me) == cluster_serial
            await until(lambda: role.core.sync_status(int(m1["member"])).serial == cluster_serial)
            assert value(s, "vpncluster_member_config_serial", **m1) == cluster_serial
            assert value(s, "vpncluster_controller_poll_round_trip_seconds_count", **m1) >= 1
            assert value(s, "vpncluster_controller_poll_round_trip_seconds_bucket", **m1, le="+Inf") >= 1
            assert value(s, "vpncluster_controller_join_attempts_total", result="accepted") == 2
            assert value(s, "vpncluster_controller_join_attempts_total", result="wrong_password") == 0
            assert value(s, "vpncluster_controller_member_evictions_total", **gone) == 1

            assert value(s, "vpncluster_admin_calls_total", method="SetMetricsCredential", result="ok") == 1
            assert value(s, "vpncluster_admin_calls_total", method="unknown", result="ERR_NOT_SUPPORTED") == 1
            assert value(s, "vpncluster_admin_call_duration_seconds_count", method="SetMetricsCredential") == 1
            assert value(s, "vpncluster_auth_failures_total", endpoint="api") == 1
            assert value(s, "vpncluster_auth_failures_total", endpoint="metrics") == 2
            assert value(s, "vpncluster_start_time_seconds") == ctl.server.started_at
            assert [dict(labels).keys() for name, labels in s if name == "vpncluster_build_info"] == [
                {"version", "python"}]
            assert value(s, "process_start_time_seconds") > 0
            assert 0 < value(s, "vpncluster_metrics_build_seconds") < 5   # the first scrape's

            # The member's own registry: its link as GetFarmConnectionStatus shows it, nothing of the controller's.
            ms = parse(member_server.metrics.exposition()[1])
            link = member_role.status().link
            assert value(ms, "vpncluster_cluster_role", role="member") == 1
            assert value(ms, "vpncluster_controller_link_online") == 1
            assert value(ms, "vpncluster_controller_link_last_error") == 0
            assert value(ms, "vpncluster_controller_link_attempts_total") == link.num_try >= 1
            assert value(ms, "vpncluster_controller_link_connections_total") == link.num_connected == 1
            assert value(ms, "vpncluster_controller_link_failures_total") == link.num_failed
            since = member_role.status().current_connected_time   # wall clock now minus a monotonic span
            assert value(ms, "vpncluster_controller_link_connected_since_seconds") == pytest.approx(since, abs=0.1)
            assert value(ms, "vpncluster_controller_link_started_seconds") > 0
            assert not any(name.startswith("vpncluster_member_") for name, _ in ms)
            assert not any(name.startswith("vpncluster_controller_link") for name, _ in s)

            # Every metric the deployment examples read exists (tools/deploy).
            scraped = {name for name, _ in s} | {name for name, _ in ms}
            assert dashboard_metrics() <= scraped, dashboard_metrics() - scraped
        finally:
            for conn in conns:
                conn.close()
            await ghost.close()
            await member_role.stop()
            await ctl.stop()
    asyncio.run(main())


def test_the_scrape_credential_bearer_basic_and_its_admin_methods(tmp_path):
    server = make_server(tmp_path)
    assert handle_scrape(server, {"authorization": f"Bearer {SCRAPE_PW}"}, "p")[0] == 404
    assert call(server, "GetMetricsCredential", {}) == {"Enabled_bool": False, "Path_str": "/metrics"}
    assert error_of(server, "SetMetricsCredential", {"PlainTextPassword_str": "x" * 256}) == Err.INVALID_PARAMETER
    call(server, "SetMetricsCredential", {"PlainTextPassword_str": SCRAPE_PW})
    assert server.state.config.metrics_password_hash == hash_admin_password(SCRAPE_PW)   # only the hash
    assert SCRAPE_PW.encode() not in (tmp_path / "vpnd.config.json").read_bytes()
    assert NodeState.open(tmp_path).config.metrics_password_hash == hash_admin_password(SCRAPE_PW)
    basic = base64.b64encode(f"prometheus:{SCRAPE_PW}".encode()).decode()
    for good in (f"Bearer {SCRAPE_PW}", f"Basic {basic}", f"bearer  {SCRAPE_PW}"):
        status, headers, body = handle_scrape(server, {"authorization": good}, "p")
        assert status == 200 and dict(headers)["Content-Type"].startswith("text/plain; version=0.0.4")
        assert b"vpncluster_config_serial" in body
    # What Prometheus asks for: the text format is among it (and half the cost of OpenMetrics).
    status, headers, _ = handle_scrape(server, {"authorization": f"Bearer {SCRAPE_PW}", "accept": (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")}, "p")
    assert status == 200 and dict(headers)["Content-Type"].startswith("text/plain; version=0.0.4")
    for bad in ({}, {"authorization": "Bearer nope"}, {"authorization": "Basic !!"},
                {"authorization": "Bearer " + "x" * 300}, {"authorization": f"Digest {SCRAPE_PW}"}):
        assert handle_scrape(server, bad, "p")[0] == 401
    failures = parse(server.metrics.exposition()[1])
    assert value(failures, "vpncluster_auth_failures_total", endpoint="metrics") == 5
    server.hubs["broken"] = None   # a bug in what a collector reads costs the scrape only
    assert handle_scrape(server, {"authorization": f"Bearer {SCRAPE_PW}"}, "p")[0] == 500
    del server.hubs["broken"]
    call(server, "SetMetricsCredential", {"PlainTextPassword_str": ""})
    assert handle_scrape(server, {"authorization": f"Bearer {SCRAPE_PW}"}, "p")[0] == 404


def test_drops_outlive_the_session_that_had_them(tmp_path):
    hub = RunningHub(HUB)
    sessions = [FakeSession(hub, "a"), FakeSession(hub, "b")]
    for s in sessions:
        hub.add_session(s)
    sessions[0].dropped_queue_full, sessions[0].dropped_oversize = 5, 1
    sessions[1].dropped_queue_full = 2
    hub.remove_session(sessions[0])
    d = hub.dropped_frames()
    assert (d.queue_full, d.oversize) == (7, 1)
