"""Local bridge admin methods: AddLocalBridge, DeleteLocalBridge,
EnumLocalBridge (Admin.c StAddLocalBridge and friends; note the hub field
is `HubNameLB_str`). Server administrator only.

The list lives in `config.bridges` and changes through NodeState.change, so
it is durable before the call returns; the data plane (service.py) follows
the change at once. As in SoftEther:
- a bridge may name a hub that does not exist (yet) or is offline: it is kept
  and shown Offline until the hub runs here;
- a device that cannot be opened leaves the bridge Online but not Active;
- adding a bridge that exists already (hub, device, TapMode) succeeds and
  changes nothing;
- DeleteLocalBridge matches hub and device case-insensitively, whatever
  TapMode says (an exact device name first: two NICs may differ only in
  case); ERR_OBJECT_NOT_FOUND when nothing matches;
- where this process cannot open a raw AF_PACKET socket (SoftEther's
  IsEthSupported on Linux), Add and Enum answer ERR_LOCAL_BRIDGE_UNSUPPORTED.
Different from SoftEther, on purpose: a bridge on a kernel device already
bridged (to another hub, or in the other TapMode) is refused with
ERR_OBJECT_EXISTS -- two bridges on one device would join two hubs or fight
over one TAP; a TAP name that would be cut to fit the 15-byte interface
name is refused (ERR_INVALID_PARAMETER) instead of being truncated as
SoftEther does. TAP device names are
`tap_` + the lower-cased name (SoftEther's rule, see service.py).
"""

from __future__ import annotations

from typing import Any

from node.admin.dispatch import AdminContext, Scope, admin_method
from node.admin.jsonrpc import RpcError
from node.admin.jsonvalue import Params
from node.admin.methods_hub import check_hub_name
from node.dataplane.service import bridge_key, bridge_status, check_device_name, eth_supported
from node.softether.errors import Err
from node.state import model


def _require_eth() -> None:
    if not eth_supported():
        raise RpcError(Err.LOCAL_BRIDGE_UNSUPPORTED,
                       "this vpnd cannot open raw network sockets (needs CAP_NET_RAW)")


def _read(p: Params) -> tuple[str, str, bool]:
    hub, device = p.str("HubNameLB").strip(), p.str("DeviceName").strip()
    if not hub or not device:
        raise RpcError(Err.INVALID_PARAMETER, "HubNameLB_str and DeviceName_str are required")
    return hub, device, p.bool("TapMode")


def _same(a: model.Bridge, b: model.Bridge) -> bool:
    return a.hub.lower() == b.hub.lower() and bridge_key(a) == bridge_key(b) and a.tap == b.tap


def _echo(hub: str, device: str, tap: bool) -> dict[str, Any]:
    return {"DeviceName_str": device, "HubNameLB_str": hub, "TapMode_bool": tap}


@admin_method("AddLocalBridge", Scope.SERVER)
def add_local_bridge(ctx: AdminContext, p: Params) -> dict[str, Any]:
    hub, device, tap = _read(p)
    hub = check_hub_name(hub)
    try:
        device = check_device_name(device, tap)
    except ValueError as exc:
        raise RpcError(Err.INVALID_PARAMETER, str(exc)) from None
    _require_eth()
    new = model.Bridge(hub=hub, device=device, tap=tap)
    if any(_same(old, new) for old in ctx.server.state.config.bridges):
        return _echo(hub, device, tap)    # SoftEther answers success and adds nothing

    def apply(config: model.Server) -> None:
        key = bridge_key(new)
        for old in config.bridges:
            if bridge_key(old) == key:
                raise RpcError(Err.OBJECT_EXISTS,
                               f"device {key} is already bridged to hub {old.hub!r}")
        config.bridges.append(new)
    ctx.server.state.change(apply)
    return _echo(hub, device, tap)


@admin_method("DeleteLocalBridge", Scope.SERVER)
def delete_local_bridge(ctx: AdminContext, p: Params) -> dict[str, Any]:
    hub, device, tap = _read(p)

    def apply(config: model.Server) -> model.Bridge:
        found = [old for old in config.bridges
                 if old.hub.lower() == hub.lower() and old.device.lower() == device.lower()]
        if not found:
            raise RpcError(Err.OBJECT_NOT_FOUND, f"no local bridge of hub {hub!r} to device {device!r}")
        # Linux NIC names are case-sensitive: eth0 and ETH0 may be two bridges; the exact name wins
        old = next((b for b in found if b.device == device), found[0])
        config.bridges.remove(old)
        return old
    gone = ctx.server.state.change(apply)
    return _echo(gone.hub, gone.device, gone.tap)


@admin_method("EnumLocalBridge", Scope.SERVER)
def enum_local_bridge(ctx: AdminContext, p: Params) -> dict[str, Any]:
    _require_eth()
    rows = []
    for bridge in ctx.server.state.config.bridges:
        online, active = bridge_status(ctx.server, bridge)
        rows.append({"DeviceName_str": bridge.device, "HubNameLB_str": bridge.hub,
                     "Online_bool": online, "Active_bool": active, "TapMode_bool": bridge.tap})
    return {"NumItem_u32": len(rows), "LocalBridgeList": rows}
