import pytest

from tests.vpnd_proc import Vpnd


@pytest.fixture
def vpnd(tmp_path):
    """A started standalone vpnd on a free loopback port."""
    node = Vpnd(tmp_path / "node").start()
    yield node
    node.stop()
