"""pytest side of the namespace lab (tools/vpndrill/lab/netns.py):
`requires_root` is the marker list for root-only tests
(`pytestmark = requires_root`); `Lab` and `root_skip_reason` are re-exported."""

from __future__ import annotations

import pytest

from tools.vpndrill.lab.netns import TUN_PATH, Lab, root_skip_reason  # noqa: F401 (re-exported)

__all__ = ["TUN_PATH", "Lab", "requires_root", "root_skip_reason"]


def _requires_root() -> list:
    reason = root_skip_reason()
    return [pytest.mark.root, pytest.mark.skipif(reason is not None, reason=reason or "")]


requires_root = _requires_root()
