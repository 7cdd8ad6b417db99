"""Prometheus metrics of one node: `GET /metrics` on every listener port.

Made with prometheus_client, never hand-formatted, in Prometheus' text
format 0.0.4 (`NodeMetrics.exposition` says why not OpenMetrics). Each
VpnServer has its own `NodeMetrics` with its own CollectorRegistry (several
nodes in one process, as the tests run them, never share a series):
- figures that exist in the running server (sessions, traffic, tables,
  drops, the cluster's members, the member's link) are read at scrape time
  by one custom collector (`_LiveState`) from the live objects: nothing is
  copied on the packet path, and a scrape shows the state of that instant;
- events that leave no state behind (admin calls and their latency, VPN
  logins by result, refused credentials, the controller's polls, joins and
  evictions) are prometheus_client Counters and Histograms registered in
  that same per-node registry, and recorded where they happen.

Access: a scrape credential of its own (model.Server.metrics_password_hash,
set with the SetMetricsCredential admin method), sent as `Authorization:
Bearer <credential>` or as the password of Basic auth (any user name). With
none set the endpoint answers 404, as if it did not exist; a missing or
wrong credential answers 401 and goes through the admin API's refused-login
path (node/admin/auth.py `login_refused`), so it counts toward the same
per-source limits as a wrong admin password.

Names: `vpncluster_*`, units in the names (`_seconds`, `_bytes`,
`_total`); per hub a `hub` label; on the controller per member `member`
(its id, stable per member for the life of the controller) and `hostname`.
Label values come from the configuration or the registry, never from what a
client sent (a VPN login's hub name is not a label), so series stay bounded.
"""

from __future__ import annotations

import hmac
import importlib.metadata
import logging
import platform
import time
from collections.abc import Iterator
from dataclasses import fields
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from controller.config_sync import NO_SERIAL
from controller.member_life import MemberState
from node.admin import auth
from node.admin.auth import login_refused, login_wait
from node.state import model

if TYPE_CHECKING:
    from controller.registry import Member
    from node.cluster.controller_role import ControllerRole
    from node.cluster.member_role import MemberRole
    from node.server import VpnServer

log = logging.getLogger("vpnd.metrics")

METRICS_PATH = "/metrics"
MAX_CREDENTIAL_CHARS = 255
"""Longer credentials are refused without hashing them (SHA-0 here is pure Python)."""
ADMIN_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
POLL_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
JOIN_RESULTS = ("accepted", "wrong_password", "throttled", "invalid", "refused")
ROLE_NAMES = {model.SERVER_STANDALONE: "standalone", model.SERVER_CONTROLLER: "controller",
              model.SERVER_MEMBER: "member"}
UNKNOWN_METHOD = "unknown"
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""What generate_latest writes (metric names here need no escaping); newer
prometheus_client calls its constant for it 1.0.0, which Prometheus 2.x predates."""

Response = tuple[int, list[tuple[str, str]], bytes]

# No `*_created` series beside every counter and histogram: they double the
# exposition and no dashboard here reads them (a process-wide switch of the
# library; this is its only user).
disable_created_metrics()


def _version() -> str:
    try:
        return importlib.metadata.version("vpncluster")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class NodeMetrics:
    """The metrics of one node (its registry, its recorders)."""

    def __init__(self, server: VpnServer) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.admin_calls = Counter("vpncluster_admin_calls", "Admin API calls by method and result "
                                   "(ok, or SoftEther's error name)", ["method", "result"], registry=r)
        self.admin_call_seconds = Histogram("vpncluster_admin_call_duration_seconds",
                                            "Time to serve one admin API call", ["method"],
                                            buckets=ADMIN_LATENCY_BUCKETS_S, registry=r)
        self.auth_failures = Counter("vpncluster_auth_failures", "Refused credentials by endpoint "
                                     "(api: the admin API, metrics: this endpoint)", ["endpoint"], registry=r)
        self.vpn_logins = Counter("vpncluster_vpn_logins", "VPN logins by result (ok, redirected, or "
                                  "SoftEther's error name)", ["result"], registry=r)
        self.poll_round_trip = Histogram("vpncluster_controller_poll_round_trip_seconds",
                                         "Controller: status poll round trip to each member",
                                         ["member", "hostname"], buckets=POLL_BUCKETS_S, registry=r)
        self.join_attempts = Counter("vpncluster_controller_join_attempts", "Controller: member join "
                                     "attempts by result", ["result"], registry=r)
        self.evictions = Counter("vpncluster_controller_member_evictions", "Controller: members evicted "
                                 "for silence", ["member", "hostname"], registry=r)
        for endpoint in ("api", "metrics"):
            self.auth_failures.labels(endpoint)
        for result in JOIN_RESULTS:
            self.join_attempts.labels(result)
        self.last_build_s: float | None = None
        """How long the previous exposition took to build, in this node's loop."""
        r.register(_LiveState(server, self))
        ProcessCollector(registry=r)

    # ---- recorders --------------------------------------------------------------

    def admin_call(self, method: str, result: str, seconds: float) -> None:
        self.admin_calls.labels(method, result).inc()
        self.admin_call_seconds.labels(method).observe(seconds)

    def exposition(self) -> tuple[str, bytes]:
        """(content type, body) of a scrape: always Prometheus' text format
        0.0.4, which every Prometheus accepts (its Accept lists it after
        OpenMetrics); prometheus_client's OpenMetrics encoder takes twice the
        time (~20 ms instead of ~9 for 100 hubs), in the node's loop, for
        nothing these metrics use (exemplars, _created series)."""
        started = time.perf_counter()
        body = generate_latest(self.registry)
        self.last_build_s = time.perf_counter() - started
        return TEXT_CONTENT_TYPE, body


def scrape_credential(headers: dict[str, str]) -> str | None:
    """The credential a scraper sent (Bearer, or Basic's password), None if none."""
    value = headers.get("authorization", "")
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer":
        return rest.strip()
    if scheme.lower() == "basic":
        try:
            return auth.credentials({"authorization": value})[1]
        except auth.AdminAuthFailed:
            return None
    return None


def credential_valid(config: model.Server, headers: dict[str, str]) -> bool:
    supplied = scrape_credential(headers)
    if not supplied or len(supplied) > MAX_CREDENTIAL_CHARS or not config.metrics_password_hash:
        return False
    return hmac.compare_digest(auth.admin_hash(supplied), config.metrics_password_hash)


def handle_scrape(server: VpnServer, headers: dict[str, str], peer: str) -> Response:
    """GET /metrics: 404 when no credential is set, 401 for a missing or
    wrong one (a refused login), else the exposition."""
    if not server.state.config.metrics_password_hash:
        return 404, [("Content-Type", "text/plain")], b"not found\n"
    wait = login_wait(server, peer)
    if wait > 0 or not credential_valid(server.state.config, headers):
        login_refused(server, peer, "metrics", f"retry in {wait:.1f} s" if wait > 0 else
                      "missing or wrong scrape credential", checked=wait <= 0)
        return 401, [("Content-Type", "text/plain"),
                     ("WWW-Authenticate", 'Basic realm="vpncluster metrics"')], b"scrape credential required\n"
    try:
        content_type, body = server.metrics.exposition()
    except Exception:
        # A bug in one collector must cost this scrape (the target shows down), not the connection's task.
        log.exception("building the metrics failed")
        return 500, [("Content-Type", "text/plain")], b"internal error\n"
    return 200, [("Content-Type", content_type)], body


# ---- what is read at scrape time -----------------------------------------------------


class _LiveState:
    """Reads the running server at each scrape (see the module prose)."""

    def __init__(self, server: VpnServer, metrics: NodeMetrics) -> None:
        self._server = server
        self._metrics = metrics
        self._build = {"version": _version(), "python": platform.python_version()}

    def describe(self) -> list[Metric]:
        return []   # nothing to check at registration: names are fixed here, once

    def collect(self) -> Iterator[Metric]:
        server = self._server
        config = server.state.config
        yield GaugeMetricFamily("vpncluster_start_time_seconds", "When this node started (Unix seconds)",
                                value=server.started_at)
        yield InfoMetricFamily("vpncluster_build", "The vpncluster build", value=self._build)
        role = GaugeMetricFamily("vpncluster_cluster_role", "The node's cluster role (1 = the saved mode)",
                                 labels=["role"])
        for number, name in ROLE_NAMES.items():
            role.add_metric([name], 1 if config.farm.server_type == number else 0)
        yield role
        yield GaugeMetricFamily("vpncluster_config_serial", "Serial of this node's saved configuration",
                                value=config.serial)
        if self._metrics.last_build_s is not None:
            yield GaugeMetricFamily("vpncluster_metrics_build_seconds", "Time the previous scrape took to build "
                                    "in this node's event loop", value=self._metrics.last_build_s)
        yield from _hubs(server)
        controller = server.cluster.controller
        if controller is not None and controller.running:
            yield from _members(controller)
        member = server.cluster.member
        if member is not None:
            yield from _link(member)


def _hubs(server: VpnServer) -> Iterator[Metric]:
    hub = ["hub"]
    sessions = GaugeMetricFamily("vpncluster_hub_sessions", "Sessions on the hub here (bridges included)",
                                 labels=hub)
    tcp = GaugeMetricFamily("vpncluster_hub_tcp_connections", "TCP connections of the hub's sessions", labels=hub)
    rx_bytes = CounterMetricFamily("vpncluster_hub_received_bytes", "Bytes of frames the hub received from its "
                                   "sessions and bridges", labels=hub)
    tx_bytes = CounterMetricFamily("vpncluster_hub_sent_bytes", "Bytes of frames the hub sent to its sessions "
                                   "and bridges", labels=hub)
    rx_packets = CounterMetricFamily("vpncluster_hub_received_packets", "Frames the hub received", labels=hub)
    tx_packets = CounterMetricFamily("vpncluster_hub_sent_packets", "Frames the hub sent", labels=hub)
    macs = GaugeMetricFamily("vpncluster_hub_mac_table_entries", "Entries in the hub's MAC table", labels=hub)
    ips = GaugeMetricFamily("vpncluster_hub_ip_table_entries", "Entries in the hub's IP table", labels=hub)
    dropped = CounterMetricFamily("vpncluster_hub_dropped_frames", "Frames the hub dropped, by cause "
                                  "(node/dataplane/hubs.py DroppedFrames)", labels=[*hub, "cause"])
    for running in list(server.hubs.values()):
        label = [running.name]
        sessions.add_metric(label, running.session_count())
        tcp.add_metric(label, running.tcp_connection_count())
        t = running.traffic()
        rx_bytes.add_metric(label, t["Recv.BroadcastBytes"] + t["Recv.UnicastBytes"])
        tx_bytes.add_metric(label, t["Send.BroadcastBytes"] + t["Send.UnicastBytes"])
        rx_packets.add_metric(label, t["Recv.BroadcastCount"] + t["Recv.UnicastCount"])
        tx_packets.add_metric(label, t["Send.BroadcastCount"] + t["Send.UnicastCount"])
        macs.add_metric(label, running.mac_table_size())
        ips.add_metric(label, running.ip_table_size())
        drops = running.dropped_frames()
        for cause in fields(drops):
            dropped.add_metric([running.name, cause.name], getattr(drops, cause.name))
    yield from (sessions, tcp, rx_bytes, tx_bytes, rx_packets, tx_packets, macs, ips, dropped)


def _members(role: ControllerRole) -> Iterator[Metric]:
    """The controller's view of every member, itself included (member 1)."""
    now = role.now()
    labels = ["member", "hostname"]
    state = GaugeMetricFamily("vpncluster_member_state", "Controller: 1 for each member's current state "
                              "(online, suspect, evicted, draining, joining, rejoining, left)", labels=[*labels, "state"])
    points = GaugeMetricFamily("vpncluster_member_points", "Controller: each member's points "
                               "(higher = less loaded)", labels=labels)
    weight = GaugeMetricFamily("vpncluster_member_weight", "Controller: each member's weight", labels=labels)
    sessions = GaugeMetricFamily("vpncluster_member_sessions", "Controller: sessions on each member, as "
                                 "last reported", labels=labels)
    tcp = GaugeMetricFamily("vpncluster_member_tcp_connections", "Controller: TCP connections on each member",
                            labels=labels)
    hub_sessions = GaugeMetricFamily("vpncluster_member_hub_sessions", "Controller: sessions of each hub on "
                                     "each member", labels=[*labels, "hub"])
    poll_age = GaugeMetricFamily("vpncluster_member_last_poll_age_seconds", "Controller: seconds since each "
                                 "member's last status report (absent before the first)", labels=labels)
    serial = GaugeMetricFamily("vpncluster_member_config_serial", "Controller: the serial of the cluster "
                               "configuration (hubs and users) each member acknowledged; the controller's "
                               "own for itself", labels=labels)
    members: list[Member] = role.core.registry.members()
    for m in members:
        label = [str(m.member_id), m.hostname]
        for s in MemberState:
            state.add_metric([*label, s.value], 1 if m.state is s else 0)
        points.add_metric(label, m.points)
        weight.add_metric(label, m.weight)
        sessions.add_metric(label, m.sessions)
        tcp.add_metric(label, m.tcp_connections)
        for hub in m.hubs.values():
            hub_sessions.add_metric([*label, hub.name], hub.sessions)
        age = m.status_age(now)
        if age is not None:
            poll_age.add_metric(label, age)
        sync = role.core.sync_status(m.member_id)
        acknowledged = sync.controller_serial if m.is_me else sync.serial
        if acknowledged != NO_SERIAL:
            serial.add_metric(label, acknowledged)
    yield from (state, points, weight, sessions, tcp, hub_sessions, poll_age, serial)


def _link(role: MemberRole) -> Iterator[Metric]:
    """A member's link to its controller, as GetFarmConnectionStatus shows it."""
    status = role.status()
    link = status.link
    yield GaugeMetricFamily("vpncluster_controller_link_online", "Member: 1 while joined to the controller",
                            value=1 if link.online else 0)
    yield GaugeMetricFamily("vpncluster_controller_link_last_error", "Member: SoftEther error number of the "
                            "last failure (0 while online)", value=int(link.last_error))
    yield CounterMetricFamily("vpncluster_controller_link_attempts", "Member: connection attempts to the "
                              "controller (NumTry)", value=link.num_try)
    yield CounterMetricFamily("vpncluster_controller_link_connections", "Member: successful joins "
                              "(NumConnected)", value=link.num_connected)
    yield CounterMetricFamily("vpncluster_controller_link_failures", "Member: failed attempts (NumFailed)",
                              value=link.num_failed)
    yield GaugeMetricFamily("vpncluster_controller_link_connected_since_seconds", "Member: start of the "
                            "current online period (Unix seconds; 0 while offline)",
                            value=status.current_connected_time)
    yield GaugeMetricFamily("vpncluster_controller_link_started_seconds", "Member: when the member role "
                            "started (Unix seconds)", value=status.started_time)
