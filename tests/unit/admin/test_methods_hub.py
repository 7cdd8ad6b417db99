"""Hub methods in-process: hub types (StCreateHub, StSetHub of SoftEther 5.01)
and which hubs a server lists (StEnumHub, StGetServerStatus walk the hubs
that exist on that server: a member has its static hubs and only the dynamic
hubs placed on it)."""

from __future__ import annotations

import pytest

from node.softether.errors import Err
from node.state import model
from tests.unit.admin.admin_call import call, error_of
from tests.unit.dataplane.fakes import make_server


def _server(tmp_path, server_type: int):
    server = make_server(tmp_path, hubs=[model.Hub("Dyn", hub_type=model.HUB_DYNAMIC),
                                         model.Hub("St", hub_type=model.HUB_STATIC, online=False)])

    def mode(config):
        config.farm.server_type = server_type
    server.state.change(mode)
    return server


def _listed(server):
    return [(h["HubName_str"], h["HubType_u32"], h["Online_bool"]) for h in call(server, "EnumHub", {})["HubList"]]


def _hub_counts(server):
    res = call(server, "GetServerStatus", {})
    return res["NumHubTotal_u32"], res["NumHubStatic_u32"], res["NumHubDynamic_u32"]


def test_a_member_lists_a_dynamic_hub_only_while_it_is_placed_there(tmp_path):
    server = _server(tmp_path, model.SERVER_MEMBER)
    assert _listed(server) == [("St", model.HUB_STATIC, False)]
    assert _hub_counts(server) == (1, 1, 0)
    server.dynamic_instances.set("dyn", True)   # the controller placed it here (any case)
    assert _listed(server) == [("Dyn", model.HUB_DYNAMIC, True), ("St", model.HUB_STATIC, False)]
    assert _hub_counts(server) == (2, 1, 1)
    server.dynamic_instances.set("Dyn", False)
    assert _listed(server) == [("St", model.HUB_STATIC, False)]


def test_a_controller_lists_every_hub_wherever_it_runs(tmp_path):
    server = _server(tmp_path, model.SERVER_CONTROLLER)
    assert _listed(server) == [("Dyn", model.HUB_DYNAMIC, True), ("St", model.HUB_STATIC, False)]
    assert _hub_counts(server) == (2, 1, 1)


@pytest.mark.parametrize(("hub", "new_type"), [("Dyn", model.HUB_STATIC), ("St", model.HUB_DYNAMIC)])
def test_a_hub_type_never_changes_on_a_controller(tmp_path, hub, new_type):
    """vpncmd's HubSetStatic/HubSetDynamic: GetHub, then SetHub with the new
    type; StSetHub answers ERR_NOT_SUPPORTED and changes nothing."""
    server = _server(tmp_path, model.SERVER_CONTROLLER)
    current = call(server, "GetHub", {"HubName_str": hub})
    assert error_of(server, "SetHub", {**current, "HubType_u32": new_type}) == Err.NOT_SUPPORTED
    assert call(server, "GetHub", {"HubName_str": hub})["HubType_u32"] == current["HubType_u32"]
    # a standalone type on a controller is a bad parameter (StSetHub)
    assert error_of(server, "SetHub", {**current, "HubType_u32": model.HUB_STANDALONE}) == Err.INVALID_PARAMETER


def test_hub_settings_are_the_controllers_on_a_member(tmp_path):
    server = _server(tmp_path, model.SERVER_MEMBER)
    for method in ("GetHub", "SetHub", "CreateHub", "DeleteHub"):
        assert error_of(server, method, {"HubName_str": "St", "HubType_u32": 1}) == Err.NOT_FARM_CONTROLLER


def test_hub_status_of_the_hubs_here(tmp_path):
    """GetHubStatus (vpncmd's /ADMINHUB:, Hub and StatusGet): the hub's state
    here; on a member a dynamic hub not placed here does not exist (8); a hub
    administrator sees only its own hub (52)."""
    server = _server(tmp_path, model.SERVER_MEMBER)
    status = call(server, "GetHubStatus", {"HubName_str": "st"})
    assert (status["HubName_str"], status["HubType_u32"], status["Online_bool"]) == ("St", model.HUB_STATIC, False)
    assert status["NumSessions_u32"] == 0 and status["SecureNATEnabled_bool"] is False
    assert status["CreatedTime_dt"] == status["LastLoginTime_dt"]  # SoftEther starts both at creation
    assert error_of(server, "GetHubStatus", {"HubName_str": "Dyn"}) == Err.HUB_NOT_FOUND
    assert error_of(server, "GetHubStatus", {"HubName_str": "Nope"}) == Err.HUB_NOT_FOUND
    (tmp_path / "c").mkdir()
    controller = _server(tmp_path / "c", model.SERVER_CONTROLLER)
    assert call(controller, "GetHubStatus", {"HubName_str": "Dyn"}, hub_admin_of="Dyn")["HubName_str"] == "Dyn"
    assert error_of(controller, "GetHubStatus", {"HubName_str": "St"}, hub_admin_of="Dyn") == Err.NOT_ENOUGH_RIGHT


def test_hubs_are_listed_by_name(tmp_path):
    server = make_server(tmp_path, hubs=[model.Hub("b"), model.Hub("C"), model.Hub("a")])
    assert [h["HubName_str"] for h in call(server, "EnumHub", {})["HubList"]] == ["a", "b", "C"]
