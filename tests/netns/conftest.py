"""Fixtures and markers for root-only namespace tests.

`requires_root` (defined in lab.py, import it from there) is `pytest.mark.root` plus a skip with a clear reason when
not root or /dev/net/tun is missing; `lab` yields a `Lab` that removes
everything it created at teardown, also when the test failed."""

from __future__ import annotations

import pytest

from tests.netns.lab import Lab, requires_root, root_skip_reason  # noqa: F401 (re-exported)


@pytest.fixture
def lab():
    reason = root_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab() as the_lab:
        yield the_lab
