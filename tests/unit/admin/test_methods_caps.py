"""GetCaps (node/admin/methods_caps.py): what vpnd really supports, in both
the JSON-RPC shape (CapsList) and the `caps_*` elements vpncmd reads."""

from __future__ import annotations

import pytest

from node.admin.pack_json import result_to_pack
from node.state import model
from tests.unit.admin.admin_call import call
from tests.unit.dataplane.fakes import make_server


@pytest.mark.parametrize("server_type,mode", [
    (model.SERVER_STANDALONE, "b_standalone"), (model.SERVER_CONTROLLER, "b_cluster_controller"),
    (model.SERVER_MEMBER, "b_cluster_member")])
def test_caps_name_the_current_mode_and_what_vpnd_supports(tmp_path, server_type, mode):
    server = make_server(tmp_path)

    def set_mode(config):
        config.farm.server_type = server_type
    server.state.change(set_mode)
    res = call(server, "GetCaps", {})
    caps = {row["CapsName_str"]: row["CapsValue_u32"] for row in res["CapsList"]}
    assert all(row["CapsDescrption_utf"] for row in res["CapsList"])
    modes = {k: v for k, v in caps.items() if k in ("b_standalone", "b_cluster_controller", "b_cluster_member")}
    assert modes == {k: int(k == mode) for k in modes}
    assert caps["b_support_cluster"] == caps["b_local_bridge"] == caps["b_tap_supported"] == 1
    assert caps["b_support_securenat"] == caps["b_support_cascade"] == caps["b_support_qos"] == 0
    assert caps["i_max_packet_size"] == 1600
    # the binary reply carries one INT caps_<name> per entry (InRpcCapsList reads those)
    pack = result_to_pack(res)
    assert {e.name[5:]: e.values[0] for e in pack if e.name.startswith("caps_")} == caps
    assert pack.get_strs("CapsName") == tuple(caps)


def test_any_administrator_may_ask(tmp_path):
    server = make_server(tmp_path, hubs=[model.Hub("Lab")])
    assert call(server, "GetCaps", {}, hub_admin_of="Lab")["CapsList"]
