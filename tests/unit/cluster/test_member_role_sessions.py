"""The member role answers the controller's session and table requests
(collective administration) from its running hubs, over a real bus."""

from __future__ import annotations

import pytest

from controller.messages import DeleteSession, EnumMacTable, EnumSessions, MacTable, SessionList
from node.dataplane.hubs import RunningHub
from node.softether.errors import Err
from tests.cluster_fakes import until
from tests.unit.cluster.test_member_role import online, run
from tests.unit.dataplane.fakes import FakeSession
from vpnbus.endpoint import RemoteError

pytestmark = pytest.mark.timeout(60)


def test_the_controller_lists_and_disconnects_the_members_sessions(tmp_path):
    async def body(ctl, server, role):
        inst = RunningHub("HUB1")
        server.hubs["hub1"] = inst
        alice = FakeSession(inst, "alice")
        inst.add_session(alice)
        await role.start()
        await until(online(role))
        peer = ctl.joined[0]
        listed = await ctl.request(peer, EnumSessions(hub="hub1"))
        assert isinstance(listed, SessionList) and [s.name for s in listed.sessions] == ["SID-ALICE-1"]
        assert await ctl.request(peer, EnumMacTable(hub="hub1")) == MacTable(rows=[])
        with pytest.raises(RemoteError) as info:
            await ctl.request(peer, DeleteSession(hub="hub1", name="SID-BOB-9"))
        assert info.value.code == Err.OBJECT_NOT_FOUND
        await ctl.request(peer, DeleteSession(hub="hub1", name="SID-ALICE-1"))
        await until(lambda: alice.close_reasons != [])
        assert "SID-ALICE-1" not in inst.sessions
    run(tmp_path, body)
