"""Cascade and SecureNAT methods in-process: SoftEther 5.01's error in each
server mode (Admin.c StEnumLink, StCreateLink, StEnableSecureNAT, ...), and
ERR_NOT_SUPPORTED where SoftEther would run the function we do not have."""

from __future__ import annotations

import pytest

from node.admin.jsonrpc import RpcError
from node.admin.methods_unavailable import LINK_METHODS, SECURENAT_SETTINGS, SECURENAT_STATUS
from node.softether.errors import Err
from node.state import model
from tests.unit.admin.admin_call import call, error_of
from tests.unit.dataplane.fakes import make_server

CLUSTER_MODES = (model.SERVER_CONTROLLER, model.SERVER_MEMBER)


def _server(tmp_path, server_type: int):
    hub_types = ((model.HUB_STANDALONE, model.HUB_STANDALONE) if server_type == model.SERVER_STANDALONE
                 else (model.HUB_STATIC, model.HUB_DYNAMIC))
    server = make_server(tmp_path, hubs=[model.Hub("St", hub_type=hub_types[0]),
                                         model.Hub("Dyn", hub_type=hub_types[1])])

    def mode(config):
        config.farm.server_type = server_type
    server.state.change(mode)
    return server


@pytest.mark.parametrize("server_type", CLUSTER_MODES)
def test_cascades_are_refused_in_cluster_modes_even_for_unknown_hubs(tmp_path, server_type):
    server = _server(tmp_path, server_type)
    for hub in ("St", "nohub"):
        assert error_of(server, "CreateLink", {"HubName_str": hub}) == Err.LINK_CANT_CREATE_ON_FARM
        for method in ("EnumLink", *LINK_METHODS):
            assert error_of(server, method, {"HubName_str": hub, "AccountName_utf": "x"}) == Err.NOT_SUPPORTED


def test_cascades_on_a_standalone_server(tmp_path):
    server = _server(tmp_path, model.SERVER_STANDALONE)
    assert call(server, "EnumLink", {"HubName_str": "st"}) == {"HubName_str": "St", "LinkList": []}
    for method in ("EnumLink", "CreateLink", *LINK_METHODS):
        assert error_of(server, method, {"HubName_str": "nohub"}) == Err.HUB_NOT_FOUND
    for method in ("CreateLink", *LINK_METHODS):
        with pytest.raises(RpcError) as info:
            call(server, method, {"HubName_str": "St", "AccountName_utf": "x"})
        assert info.value.code == Err.NOT_SUPPORTED and "does not implement cascade" in info.value.detail


def test_securenat_on_a_member(tmp_path):
    server = _server(tmp_path, model.SERVER_MEMBER)
    for method in (*SECURENAT_SETTINGS, *SECURENAT_STATUS):
        # the dynamic hub is not on this member until the controller places it here
        assert error_of(server, method, {"HubName_str": "Dyn"}) == Err.HUB_NOT_FOUND
        assert error_of(server, method, {"HubName_str": "St"}) == Err.NOT_SUPPORTED
    server.dynamic_instances.set("dyn", True)
    for method in SECURENAT_SETTINGS:
        assert error_of(server, method, {"HubName_str": "Dyn"}) == Err.NOT_FARM_CONTROLLER
    for method in SECURENAT_STATUS:
        assert error_of(server, method, {"HubName_str": "Dyn"}) == Err.NOT_SUPPORTED


@pytest.mark.parametrize("server_type", (model.SERVER_STANDALONE, model.SERVER_CONTROLLER))
def test_securenat_where_softether_would_run_it_is_not_supported(tmp_path, server_type):
    server = _server(tmp_path, server_type)
    for method in (*SECURENAT_SETTINGS, *SECURENAT_STATUS):
        assert error_of(server, method, {"HubName_str": "nohub"}) == Err.HUB_NOT_FOUND
        with pytest.raises(RpcError) as info:
            call(server, method, {"HubName_str": "Dyn"})
        assert info.value.code == Err.NOT_SUPPORTED and "SecureNAT" in info.value.detail


def test_a_hub_administrator_only_reaches_its_own_hub(tmp_path):
    server = _server(tmp_path, model.SERVER_STANDALONE)
    assert call(server, "EnumLink", {"HubName_str": "St"}, hub_admin_of="st")["LinkList"] == []
    assert error_of(server, "EnumLink", {"HubName_str": "Dyn"}, hub_admin_of="st") == Err.NOT_ENOUGH_RIGHT
    assert error_of(server, "EnableSecureNAT", {"HubName_str": "Dyn"}, hub_admin_of="st") == Err.NOT_ENOUGH_RIGHT
