"""pytest side of the SoftEther lab (tools/vpndrill/lab/softether.py): the
skip when the real binaries cannot run, and fixtures that stop every
instance at teardown. Everything else is re-exported from the product."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tools.vpndrill.cluster import free_port
from tools.vpndrill.lab.softether import (
    SERVER_TYPE_CONTROLLER,
    SERVER_TYPE_MEMBER,
    SERVER_TYPE_STANDALONE,
    LabError,
    SoftEtherClient,
    SoftEtherLab,
    SoftEtherServer,
    account_status,
    in_netns,
    skip_reason,
    wait_account,
)

__all__ = ["SERVER_TYPE_CONTROLLER", "SERVER_TYPE_MEMBER", "SERVER_TYPE_STANDALONE", "LabError", "SoftEtherClient",
           "SoftEtherLab", "SoftEtherServer", "account_status", "free_port", "in_netns", "require_softether", "skip_reason",
           "softether_lab", "softether_server", "wait_account"]


def require_softether(*, need_client: bool = False) -> None:
    """pytest.skip with a clear reason when the lab cannot run."""
    reason = skip_reason(need_client=need_client)
    if reason:
        pytest.skip(reason)


@pytest.fixture
def softether_lab() -> Iterator[SoftEtherLab]:
    """A lab to start several SoftEther servers in; all stopped at teardown."""
    require_softether()
    with SoftEtherLab() as lab:
        yield lab


@pytest.fixture
def softether_server(softether_lab: SoftEtherLab) -> SoftEtherServer:
    """One standalone SoftEther VPN Server on a free loopback port."""
    return softether_lab.server()
