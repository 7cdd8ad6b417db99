import pytest

from tests.vpnd_proc import Vpnd


@pytest.fixture
def vpnd(tmp_path):
    """A started standalone vpnd on a free loopback port."""
    node = Vpnd(tmp_path / "node").start()
    yield node
    node.stop()


@pytest.fixture
def nodes(tmp_path):
    """Start vpnd nodes by name (`nodes("ctl")`), each in its own state dir; all stopped afterwards."""
    started: list[Vpnd] = []

    def start(name: str) -> Vpnd:
        node = Vpnd(tmp_path / name).start()
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()
