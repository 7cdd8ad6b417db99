"""Debian's real Prometheus scrapes a real cluster on loopback: a controller
and two members (vpnd processes), the controller and one member scraped
over HTTPS with the scrape credential, every second. The test reads
Prometheus' HTTP API as a dashboard would: the session count, the members'
states, a member's eviction after kill -9 of it; and a job with a wrong
credential shows its target down (HTTP 401).

Prometheus runs from a temporary directory (its own config, credential file
and TSDB), listens on 127.0.0.1 only and is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from node.daemon import HOSTNAME_ENV
from tools.vpnclient.client import UserspaceClient
from tools.vpnclient.retry import RetryPolicy
from tools.vpndrill.cluster import REPO_ROOT, LocalCluster, free_port, stop_pid

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus package is not installed "
                       "(tools/setup.sh installs it: apt-get install prometheus)"),
]

SCRAPE_CREDENTIAL = "scrape-secret-1"
HUB, USER, PASSWORD = "Sales", "alice", "alice-pw"
SESSIONS = 3
DEADLINE_S = 40.0

SCRAPE_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: vpncluster
    scheme: https
    tls_config:
      insecure_skip_verify: true
    authorization:
      credentials_file: {credential_file}
    static_configs:
      - targets: [{targets}]
  - job_name: wrong-credential
    scheme: https
    tls_config:
      insecure_skip_verify: true
    authorization:
      credentials: not-the-credential
    static_configs:
      - targets: ['{controller}']
"""


class Prometheus:
    """A Prometheus server of this test (temp dir, loopback port, stopped by PID)."""

    def __init__(self, base: Path, targets: list[str]) -> None:
        base.mkdir()
        credential_file = base / "scrape.credential"
        credential_file.write_text(SCRAPE_CREDENTIAL + "\n")
        credential_file.chmod(0o600)
        self.config = base / "prometheus.yml"
        self.config.write_text(SCRAPE_CONFIG.format(
            credential_file=credential_file, targets=", ".join(f"'{t}'" for t in targets), controller=targets[0]))
        self.base = base
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        assert PROMETHEUS is not None
        with open(self.base / "prometheus.log", "ab") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={self.config}", f"--storage.tsdb.path={self.base / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=self.base)

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc, "prometheus")

    def api(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as resp:
            doc = json.load(resp)
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant query: (labels, value) of each series; [] while Prometheus is not up yet."""
        try:
            data = self.api("query", query=expr)
        except OSError:
            return []
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def wait(self, expr: str, check, what: str) -> list[tuple[dict[str, str], float]]:
        """Query until `check(result)` holds; fails naming `what` and the last result."""
        deadline = time.monotonic() + DEADLINE_S
        while True:
            result = self.query(expr)
            if check(result):
                return result
            if time.monotonic() > deadline:
                log = (self.base / "prometheus.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"{what}: not within {DEADLINE_S} s; {expr} = {result}\n{log}")
            time.sleep(0.2)


DEPLOY = Path(__file__).resolve().parents[2] / "tools" / "deploy"


def dashboard_queries() -> list[str]:
    """Every PromQL expression of tools/deploy/grafana-dashboard.json, its
    Grafana variables given values."""
    doc = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in doc["annotations"]["list"]]
    return [e.replace("$__rate_interval", "5s").replace("$job", "vpncluster") for e in exprs]


def test_the_example_scrape_config_is_valid(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    config = (DEPLOY / "prometheus.yml").read_text()
    credential = tmp_path / "credential"
    credential.write_text("x\n")
    checked = tmp_path / "prometheus.yml"
    checked.write_text(config.replace("/etc/prometheus/vpncluster.credential", str(credential)))
    done = subprocess.run([promtool, "check", "config", str(checked)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def one(value: float):
    return lambda result: len(result) == 1 and result[0][1] == value


def test_prometheus_scrapes_sessions_member_states_and_an_eviction(tmp_path):
    cluster = LocalCluster(tmp_path / "cluster", members=2, liveness_s=1.5)
    for node in cluster.nodes:   # host names tell the members apart in the labels
        node.env = {**(node.env or {}), HOSTNAME_ENV: node.name}
    ctl, m1 = f"127.0.0.1:{cluster.controller.port}", f"127.0.0.1:{cluster.members[0].port}"
    prometheus = Prometheus(tmp_path / "prometheus", [ctl, m1])

    async def sessions() -> list[UserspaceClient]:
        clients = [UserspaceClient(ctl, HUB, USER, PASSWORD, retry=RetryPolicy()) for _ in range(SESSIONS)]
        for c in clients:
            await c.wait_connected(30)
        return clients

    async def main() -> None:
        await asyncio.to_thread(cluster.start)
        with cluster.controller.client() as admin:
            admin.call("CreateHub", {"HubName_str": HUB, "HubType_u32": 1, "Online_bool": True})
            admin.call("CreateUser", {"HubName_str": HUB, "Name_str": USER, "AuthType_u32": 1,
                                      "Auth_Password_str": PASSWORD})
            admin.call("SetMetricsCredential", {"PlainTextPassword_str": SCRAPE_CREDENTIAL})
        # On the member as an operator would: with vpnctl.
        member = cluster.members[0]
        vpnctl = [sys.executable, "-m", "tools.vpnctl.main", "--server", m1, "--password-file", str(member.pw_file)]
        done = await asyncio.to_thread(subprocess.run, [*vpnctl, "MetricsCredentialSet", SCRAPE_CREDENTIAL],
                                       capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
        assert done.returncode == 0 and "Enabled" in done.stdout, done.stdout + done.stderr
        done = await asyncio.to_thread(subprocess.run, [*vpnctl, "--json", "MetricsCredentialGet"],
                                       capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
        assert json.loads(done.stdout)["Enabled_bool"] is True, done.stdout + done.stderr
        prometheus.start()
        clients = await sessions()
        try:
            wait = prometheus.wait
            await asyncio.to_thread(wait, 'up{job="vpncluster"}',
                                    lambda r: len(r) == 2 and all(v == 1 for _, v in r), "both targets up")
            await asyncio.to_thread(wait, f'sum(vpncluster_member_sessions{{instance="{ctl}"}})', one(SESSIONS),
                                    "the session count on the controller")
            await asyncio.to_thread(wait, f'count(vpncluster_member_state{{instance="{ctl}",state="online"}} == 1)',
                                    one(3), "controller and both members online")
            await asyncio.to_thread(wait, f'vpncluster_controller_link_online{{instance="{m1}"}}', one(1),
                                    "member1's link to the controller")
            down = await asyncio.to_thread(wait, 'up{job="wrong-credential"}', one(0),
                                           "the target scraped with a wrong credential is down")
            assert down[0][0]["instance"] == ctl
            targets = await asyncio.to_thread(prometheus.api, "targets")
            wrong = [t for t in targets["activeTargets"] if t["labels"]["job"] == "wrong-credential"]
            assert wrong and wrong[0]["health"] == "down" and "401" in wrong[0]["lastError"], wrong

            cluster.members[0].kill()   # SIGKILL, by its PID
            await asyncio.to_thread(
                wait, f'vpncluster_member_state{{instance="{ctl}",hostname="member1",state="evicted"}}', one(1),
                "member1 evicted on the controller")
            await asyncio.to_thread(
                wait, f'vpncluster_controller_member_evictions_total{{instance="{ctl}",hostname="member1"}}', one(1),
                "the eviction counted")
            await asyncio.to_thread(wait, f'up{{instance="{m1}",job="vpncluster"}}', one(0), "member1's target down")
            still = await asyncio.to_thread(
                prometheus.query, f'vpncluster_member_state{{instance="{ctl}",hostname="member2",state="online"}}')
            assert [v for _, v in still] == [1]

            # Every query of the Grafana dashboard is PromQL this Prometheus accepts.
            for expr in dashboard_queries():
                await asyncio.to_thread(prometheus.api, "query", query=expr)
        finally:
            await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)

    try:
        asyncio.run(asyncio.wait_for(main(), 200))
    finally:
        prometheus.stop()
        cluster.close()
