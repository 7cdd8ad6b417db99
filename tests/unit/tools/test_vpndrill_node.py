"""tools/vpndrill/cluster.py `Node.start`: the port retry, without processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.vpndrill.cluster import DrillError, Node


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
