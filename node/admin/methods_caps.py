"""GetCaps: what this server really supports (Server.c GetServerCapsMain).

vpncmd asks for the list on connecting (ScGetCapsEx) and the GUI manager
hides what a server lacks, so every entry states what vpnd does, not what
SoftEther does: clustering, local bridges (existing interfaces and TAP),
hidden hubs (NoEnum) yes; SecureNAT, cascades, QoS, L2TP/SSTP/OpenVPN,
RADIUS, Layer-3 switches, syslog and dynamic DNS no. Mode entries
(`b_standalone`, `b_cluster_controller`, `b_cluster_member`) name the
current mode, as SoftEther's do.

Encoding: SoftEther's reply has one INT `caps_<name>` per entry (what its
InRpcCapsList reads) plus the `CapsName`/`CapsValue`/`CapsDescrption` (sic)
arrays that its JSON-RPC shows as the `CapsList` group. The result below
carries both, so the generic PACK translation (pack_json.py) gives vpncmd
its `caps_*` elements.
"""

from __future__ import annotations

from typing import Any

from controller.points import DEFAULT_MAX_SESSIONS
from node.admin.dispatch import AdminContext, Scope, admin_method
from node.admin.jsonvalue import Params
from node.state import model

MAX_PACKET_SIZE = 1600  # frames above this are dropped (blocks.py), as SoftEther's MAX_PACKET_SIZE

# name → description; values come from `_values` (the name says bool or int)
CAPS: dict[str, str] = {
    "i_max_packet_size": "Largest Ethernet frame carried",
    "i_max_sessions": "Session limit used in the cluster points formula",
    "b_standalone": "Running as a standalone server",
    "b_cluster_controller": "Running as a cluster controller",
    "b_cluster_member": "Running as a cluster member",
    "b_support_cluster": "Clustering (controller and members) is supported",
    "b_support_cluster_admin": "The controller administers the whole cluster",
    "b_cluster_hub_type_fixed": "A hub keeps its static or dynamic type",
    "b_support_hide_hub": "Hubs can be hidden from enumeration",
    "b_vpn_client_connect": "Accepts connections from VPN clients",
    "b_local_bridge": "Local bridges are supported",
    "b_tap_supported": "Local bridges to a new TAP device are supported",
    "b_must_install_pcap": "A packet capture driver must be installed",
    "b_bridge": "Runs as VPN Bridge software",
    "b_is_softether": "Is SoftEther VPN software",
    "b_support_securenat": "SecureNAT is supported",
    "b_support_cascade": "Cascade connections are supported",
    "b_support_qos": "VoIP / QoS functions are supported",
    "b_support_ipsec": "IPsec / L2TP / EtherIP server functions are supported",
    "b_support_sstp": "MS-SSTP server function is supported",
    "b_support_openvpn": "OpenVPN server function is supported",
    "b_support_ddns": "Dynamic DNS client is supported",
    "b_support_radius": "External authentication servers are supported",
    "b_support_layer3": "The virtual Layer 3 switch is supported",
    "b_support_syslog": "Syslog sending is supported",
    "b_support_config_rw": "Remote reading and writing of the config file is supported",
}


def _values(server_type: int) -> dict[str, int]:
    return {
        "i_max_packet_size": MAX_PACKET_SIZE,
        "i_max_sessions": DEFAULT_MAX_SESSIONS,
        "b_standalone": int(server_type == model.SERVER_STANDALONE),
        "b_cluster_controller": int(server_type == model.SERVER_CONTROLLER),
        "b_cluster_member": int(server_type == model.SERVER_MEMBER),
        "b_support_cluster": 1,
        "b_support_cluster_admin": 1,
        "b_cluster_hub_type_fixed": 1,
        "b_support_hide_hub": 1,
        "b_vpn_client_connect": 1,
        "b_local_bridge": 1,
        "b_tap_supported": 1,
    }   # every other entry of CAPS is 0


@admin_method("GetCaps", Scope.ANY)
def get_caps(ctx: AdminContext, p: Params) -> dict[str, Any]:
    values = _values(ctx.server.state.config.farm.server_type)
    rows = [{"CapsName_str": name, "CapsValue_u32": values.get(name, 0), "CapsDescrption_utf": text}
            for name, text in CAPS.items()]
    return {"CapsList": rows, **{f"caps_{name}_u32": values.get(name, 0) for name in CAPS}}
