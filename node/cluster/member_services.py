"""A server's answers to collective administration: its own sessions, MAC
and IP tables, from its running hub instances (CLUSTERING.md §3.9.10).

A member serves these to the controller over the bus (member_role.py
dispatches through `serve`); every node's admin API builds its own rows
from the same answers (node/admin/methods_session.py), so a session looks
the same whether the controller lists it as its own or a member's.

Functions take the VpnServer and a request record and return the reply
record; they do no I/O (DeleteSession starts the session's close in a task
and answers at once, as SoftEther's StopSession). SoftEther's member side
(Server.c SiCalledEnumSession, SiCalledGetSessionStatus,
SiCalledDeleteSession, SiCalledEnumMacTable/IpTable,
SiCalledDeleteMacTable/IpTable) answers "nothing" for a hub it does not
run; here too: such a hub has no sessions and empty tables, and a session
or key that is not here is ERR_OBJECT_NOT_FOUND (raised as the bus's
RequestFailed, which the bus sends as an error reply and the admin API
turns into the same SoftEther error). Times are Unix seconds.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from controller.messages import (
    Ack, DeleteIpTable, DeleteMacTable, DeleteSession, EnumIpTable, EnumMacTable, EnumSessions,
    GetSessionStatus, IpRow, IpTable, MacRow, MacTable, SessionDetail, SessionList, SessionRow,
)
from node.dataplane.hubs import BridgeSession, RunningHub, traffic_dict
from node.dataplane.session import VpnSession
from node.dataplane.switch import Traffic
from node.softether.errors import Err
from vpnbus.endpoint import RequestFailed

if TYPE_CHECKING:
    from node.server import VpnServer

log = logging.getLogger("vpnd.admin")

BRIDGE_USER_PRINT = "Local Bridge"          # SoftEther's BRIDGE_USER_NAME_PRINT
DISCONNECT_REASON = "disconnected by the administrator"

Reply = SessionList | SessionDetail | MacTable | IpTable | Ack


def _client_traffic(t: Traffic | None) -> dict[str, int]:
    """The switch counts from the hub's side; the session shows the client's."""
    if t is None:
        return {}
    return {("Send." if k.startswith("Recv.") else "Recv.") + k.split(".", 1)[1]: v
            for k, v in traffic_dict(t).items()}


def vpn_detail(instance: RunningHub, s: VpnSession) -> SessionDetail:
    return SessionDetail(
        name=s.name, connection_name=s.connection_name, username=s.username, real_username=s.username,
        client_ip=s.client_ip, client_port=int(s.client_port), client_hostname=s.client_hostname,
        client_product=s.client_product, client_version=int(s.client_version),
        client_build=int(s.client_build), created_time=float(s.created_time),
        last_comm_time=float(s.last_comm_time), tcp_connections=int(s.tcp_connections),
        max_tcp_connections=int(s.max_tcp_connections), use_encrypt=bool(s.use_encrypt),
        use_compress=bool(s.use_compress), session_key=bytes(s.session_key), unique_id=bytes(s.unique_id),
        # the session counts from the server's side: what it received, the client sent
        sent_bytes=int(s.total_recv_bytes), received_bytes=int(s.total_send_bytes),
        traffic=_client_traffic(instance.port_traffic(s)), bridge=False)


def bridge_detail(instance: RunningHub, b: BridgeSession) -> SessionDetail:
    t = instance.port_traffic(b.port) if b.port is not None else None
    return SessionDetail(
        name=b.name, connection_name=b.name, username=BRIDGE_USER_PRINT, real_username="",
        client_ip="0.0.0.0", client_port=0, client_hostname="", client_product="", client_version=0,
        client_build=0, created_time=float(b.created_time), last_comm_time=float(b.created_time),
        tcp_connections=0, max_tcp_connections=0, use_encrypt=False, use_compress=False,
        session_key=bytes(b.session_key), unique_id=b"", sent_bytes=0, received_bytes=0,
        traffic=_client_traffic(t), bridge=True)


def session_row(d: SessionDetail) -> SessionRow:
    return SessionRow(
        name=d.name, username=d.username, client_ip=d.client_ip, client_hostname=d.client_hostname,
        created_time=d.created_time, last_comm_time=d.last_comm_time, tcp_connections=d.tcp_connections,
        max_tcp_connections=d.max_tcp_connections,
        # GetTrafficPacketSize/Num: everything, both ways
        packet_bytes=sum(n for k, n in d.traffic.items() if k.endswith("Bytes")),
        packet_count=sum(n for k, n in d.traffic.items() if k.endswith("Count")),
        bridge=d.bridge, unique_id=d.unique_id)


def _details(instance: RunningHub | None) -> list[SessionDetail]:
    if instance is None:
        return []
    return ([bridge_detail(instance, b) for b in list(instance.bridges.values())]
            + [vpn_detail(instance, s) for s in list(instance.sessions.values())])


def _find_bridge(instance: RunningHub, name: str) -> BridgeSession | None:
    key = name.lower()
    return next((b for b in instance.bridges.values() if b.name.lower() == key), None)


def _not_found(what: str, hub: str) -> RequestFailed:
    return RequestFailed(Err.OBJECT_NOT_FOUND, f"no {what} on hub {hub!r}")


def enum_sessions(server: VpnServer, req: EnumSessions) -> SessionList:
    return SessionList(sessions=[session_row(d) for d in _details(server.running_hub(req.hub))])


def get_session_status(server: VpnServer, req: GetSessionStatus) -> SessionDetail:
    """Raises RequestFailed(ERR_OBJECT_NOT_FOUND)."""
    instance = server.running_hub(req.hub)
    if instance is not None:
        s = instance.find_session(req.name)
        if s is not None:
            return vpn_detail(instance, s)
        b = _find_bridge(instance, req.name)
        if b is not None:
            return bridge_detail(instance, b)
    raise _not_found(f"session {req.name!r}", req.hub)


def delete_session(server: VpnServer, req: DeleteSession) -> Ack:
    """Start disconnecting the session (it ends on its own task). Raises
    RequestFailed: ERR_BRIDGE_CANT_DISCONNECT for a local bridge session,
    ERR_OBJECT_NOT_FOUND. Needs a running event loop."""
    instance = server.running_hub(req.hub)
    if instance is not None and _find_bridge(instance, req.name) is not None:
        raise RequestFailed(Err.BRIDGE_CANT_DISCONNECT, f"{req.name} is a local bridge (use DeleteLocalBridge)")
    s = instance.find_session(req.name) if instance is not None else None
    if instance is None or s is None:
        raise _not_found(f"session {req.name!r}", req.hub)
    log.info("session %s of hub %s disconnected by an administrator", s.name, instance.name)
    instance.disconnect(s, DISCONNECT_REASON)
    return Ack()


def enum_mac_table(server: VpnServer, req: EnumMacTable) -> MacTable:
    instance = server.running_hub(req.hub)
    if instance is None:
        return MacTable(rows=[])
    return MacTable(rows=[MacRow(key=e.key, session_name=e.session_name, mac=bytes(e.mac_address),
                                 vlan_id=e.vlan_id, created_time=instance.wall(e.created_time),
                                 updated_time=instance.wall(e.updated_time))
                          for e in instance.hub.mac_table()])


def enum_ip_table(server: VpnServer, req: EnumIpTable) -> IpTable:
    instance = server.running_hub(req.hub)
    if instance is None:
        return IpTable(rows=[])
    return IpTable(rows=[IpRow(key=e.key, session_name=e.session_name,
                               ip=str(ipaddress.ip_address(bytes(e.ip_address))),
                               dhcp_allocated=e.dhcp_allocated, created_time=instance.wall(e.created_time),
                               updated_time=instance.wall(e.updated_time))
                         for e in instance.hub.ip_table()])


def delete_table_entry(server: VpnServer, req: DeleteMacTable | DeleteIpTable) -> Ack:
    """DeleteMacTable / DeleteIpTable. Raises RequestFailed(ERR_OBJECT_NOT_FOUND)."""
    instance = server.running_hub(req.hub)
    mac = isinstance(req, DeleteMacTable)
    switch = instance.hub.switch if instance is not None else None
    if switch is None or not (switch.delete_mac(req.key) if mac else switch.delete_ip(req.key)):
        raise _not_found(f"{'MAC' if mac else 'IP'} table entry {req.key}", req.hub)
    return Ack()


def serve(server: VpnServer, msg: object) -> Reply | None:
    """The reply to a collective-administration request; None when `msg` is
    not one. Raises RequestFailed as the functions above."""
    if isinstance(msg, EnumSessions):
        return enum_sessions(server, msg)
    if isinstance(msg, GetSessionStatus):
        return get_session_status(server, msg)
    if isinstance(msg, DeleteSession):
        return delete_session(server, msg)
    if isinstance(msg, EnumMacTable):
        return enum_mac_table(server, msg)
    if isinstance(msg, EnumIpTable):
        return enum_ip_table(server, msg)
    if isinstance(msg, (DeleteMacTable, DeleteIpTable)):
        return delete_table_entry(server, msg)
    return None
