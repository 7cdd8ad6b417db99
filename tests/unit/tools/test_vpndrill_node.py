"""tools/vpndrill/cluster.py `Node`: the port retry and the command line,
without processes; `stop_pid` on a stopped process."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tools.vpndrill.cluster import DrillError, Node, stop_pid


class _Exited:
    pid = 0

    def poll(self) -> int:
        return 1


class _PortTaken(Node):
    """Every spawn 'exits' at once with vpnd's message for a taken port."""

    def spawn(self) -> None:
        self.proc = _Exited()
        self.pids.append(len(self.pids) + 1)
        self.ports.append(self.port)

    def wait_ready(self, timeout_s: float = 0) -> None:
        raise DrillError("vpnd exited with 1")

    def log_tail(self, size: int = 4000) -> str:
        return "vpnd: cannot listen on 127.0.0.1: address in use"


def test_first_start_tries_three_ports_then_gives_up(tmp_path: Path):
    node = _PortTaken("n", tmp_path / "n", "pw")
    node.ports = []
    with pytest.raises(DrillError, match="no free port"):
        node.start()
    assert len(node.pids) == 3
    assert len(set(node.ports)) == 3


def test_restart_keeps_its_port(tmp_path: Path):
    node = _PortTaken("n", tmp_path / "n", "pw", pids=[1234])
    node.ports = []
    port = node.port
    with pytest.raises(DrillError, match="exited"):
        node.start()
    assert node.ports == [port]


def test_a_cluster_node_spawned_first_also_moves_to_a_free_port(tmp_path: Path):
    """LocalCluster spawns every node, then waits for each: the retry holds there too."""
    node = _PortTaken("n", tmp_path / "n", "pw")
    node.ports = []
    node.spawn()
    with pytest.raises(DrillError, match="no free port"):
        node.wait_started()
    assert len(set(node.ports)) == 3


class _Recorded(Node):
    """spawn() goes through popen(): record the command instead of running it."""

    def popen(self, argv: list[str], **kwargs) -> _Exited:
        self.argv, self.kwargs = argv, kwargs
        return _Exited()


def test_spawn_listens_on_every_host_at_the_port_through_popen(tmp_path: Path):
    node = _Recorded("n", tmp_path / "n", "pw", port=4433, hosts=("10.75.0.1", "127.0.0.1"))
    node.spawn()
    listen = [node.argv[i + 1] for i, word in enumerate(node.argv) if word == "--listen"]
    assert listen == ["10.75.0.1:4433", "127.0.0.1:4433"]
    assert node.pw_file.read_text() == "pw\n"
    assert node.kwargs["stdin"] == subprocess.DEVNULL


def test_stop_pid_wakes_a_stopped_process_so_it_can_act_on_sigterm():
    proc = subprocess.Popen(["sleep", "60"])
    try:
        os.kill(proc.pid, signal.SIGSTOP)
        assert stop_pid(proc, wait_s=5) == -signal.SIGTERM
        assert stop_pid(proc) == -signal.SIGTERM   # already reaped: just the status
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
