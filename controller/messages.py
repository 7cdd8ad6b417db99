"""The cluster protocol: every message the controller and members exchange
over vpnbus, one record per message type (STYLE §4).

Conversation, in order:

1. Join (member → controller; the member's CURVE key is its identity, the
   ZAP User-Id, so no message carries a key the peer chose):
   `JoinHello` → reply `JoinChallenge` (the controller's nonce); the member
   proves the password first with `JoinProof` → reply `JoinAccepted`, which
   carries the controller's proof (controller/joinauth.py says why in that
   order). A refused proof is answered with a bus error carrying
   ERR_ACCESS_DENIED. A member that finds the controller's proof wrong (a
   fake controller, or a man in the middle) sends `JoinAbort` and trusts
   nothing from it. Until `JoinAccepted`, the controller answers every other
   message from that key with ERR_ACCESS_DENIED.
2. Right after `JoinAccepted`, the controller brings the member's copy of
   the cluster hubs to its config serial (controller/config_sync.py): a
   member it knows gets the changes since its serial as `ConfigDelta`s, a
   new or lost one a full sync in `ConfigChunk`s (each well under the frame
   limit, acknowledged with `ChunkAck`, resumable); every later change goes
   out as one `ConfigDelta`. The member answers a delta with `ConfigAck`
   carrying its serial, so a gap shows at once.
3. The controller polls every member concurrently with `StatusPoll`; the
   reply is `StatusReport` (points, load, hub instances). Liveness itself is
   vpnbus's heartbeats (3 s silence = evicted).
4. Dynamic hubs: `CreateHubInstance` / `DeleteHubInstance` (placement).
5. Sessions (clustered sessions issue): `CreateTicket` → `TicketCreated`;
   admin views gather `EnumSessions`, `GetSessionStatus`, `DeleteSession`,
   `EnumMacTable`, `EnumIpTable`, `DeleteMacTable`, `DeleteIpTable` from
   every member.
6. `Leave` (member → controller) when the member changes mode; `Rejoin`
   (controller → member) when an evicted member talks as if it were joined.

Replies that carry nothing are `Ack`. Times are Unix seconds (float).
"""

from __future__ import annotations

from controller.tickets import PolicyValue
from vpnbus.envelope import message

PROTOCOL_VERSION = 4
"""4: configuration as deltas and chunked full syncs (ConfigDelta, ConfigChunk) instead of one whole PushConfig.
3: UserConfig carries created_time/updated_time (a version-2 member refuses those fields).
2: the member proves the password first (1 had the controller prove first)."""


@message("cluster.ack")
class Ack:
    """Reply: done."""


# -- join -------------------------------------------------------------------

@message("cluster.join_hello")
class JoinHello:
    """Member → controller: start a join."""

    version: int
    """PROTOCOL_VERSION of the member."""
    nonce: bytes
    """The member's fresh random challenge (joinauth)."""
    hostname: str
    """The member's host name (ClusterMemberList "Host")."""
    public_ip: str
    """Address clients are redirected to; "" = the address the member used to reach us."""
    public_ports: list[int]
    """Listener ports clients may use (1..128 values)."""
    weight: int
    """Function Standard Ratio (100 = normal)."""
    max_sessions: int
    """The member's session limit."""
    server_cert: bytes
    """The member's TLS certificate, DER (sent to clients in a redirect)."""


@message("cluster.join_challenge")
class JoinChallenge:
    """Reply to JoinHello: the controller's nonce (its proof comes with JoinAccepted)."""

    nonce: bytes


@message("cluster.join_proof")
class JoinProof:
    """Member → controller: the member's proof of the password."""

    proof: bytes


@message("cluster.join_abort")
class JoinAbort:
    """Member → controller: the proof in JoinAccepted did not verify; the member trusts nothing."""

    reason: str


@message("cluster.join_accepted")
class JoinAccepted:
    """Reply to JoinProof: the member is in the cluster."""

    member_id: int
    """The controller's id for this member (ClusterMemberList "ID")."""
    controller_hostname: str
    proof: bytes
    """The controller's proof of the password (joinauth proof_c); check it before trusting anything."""


@message("cluster.leave")
class Leave:
    """Member → controller: this member leaves the cluster (mode change, shutdown)."""

    reason: str


@message("cluster.rejoin")
class Rejoin:
    """Controller → member: you are not (or no longer) joined; run the join again."""

    reason: str


# -- configuration ----------------------------------------------------------
# HubConfig and UserConfig have the fields of node/state/model.py's Hub and
# User, by name and type (a unit test holds them together); the member and the
# controller convert between them generically (vpnbus.records.convert).

@message("cluster.user")
class UserConfig:
    """One hub user, as stored (password material hashed, never clear)."""

    name: str
    auth_type: int
    hashed_key: bytes
    group: str = ""
    realname: str = ""
    note: str = ""
    created_time: float = 0.0
    updated_time: float = 0.0
    expire_time: float = 0.0


@message("cluster.hub")
class HubConfig:
    """One hub's whole configuration."""

    name: str
    hub_type: int
    """1 static, 2 dynamic."""
    online: bool
    max_session: int
    no_enum: bool
    hashed_password: bytes
    secure_password: bytes
    created_time: float
    users: list[UserConfig]


@message("cluster.hub_change")
class HubChange:
    """The changes of one hub between two serials."""

    hub: str
    """The hub's name."""
    deleted: bool = False
    """The hub is gone (nothing else is set)."""
    settings: HubConfig | None = None
    """Created, or its settings changed: the hub with `users` empty (users come in users_put)."""
    users_put: list[UserConfig] | None = None
    """Users created or changed (a user is named case-insensitively)."""
    users_deleted: list[str] | None = None


@message("cluster.config_delta")
class ConfigDelta:
    """Controller → member: the changes from `base_serial` to `serial`.
    Applied only by a member at `base_serial` (base == serial: a probe).
    Reply: ConfigAck with the member's serial afterwards."""

    base_serial: int
    serial: int
    changes: list[HubChange]


@message("cluster.config_ack")
class ConfigAck:
    """Reply to ConfigDelta: the serial the member holds now (-1: none)."""

    serial: int


@message("cluster.config_chunk")
class ConfigChunk:
    """Controller → member: part `index` of `count` of the whole configuration
    at `serial`. A hub too large for one chunk continues in the next ones
    (same name, more users). The member applies all of it atomically once
    the last part arrived. Reply: ChunkAck."""

    sync_id: int
    """One full sync (a new one starts at index 0)."""
    serial: int
    index: int
    count: int
    hubs: list[HubConfig]


@message("cluster.chunk_ack")
class ChunkAck:
    """Reply to ConfigChunk: the part the member wants next (count: all
    applied; a lower index than sent: resume there) and its serial."""

    sync_id: int
    next_index: int
    serial: int


# -- status -----------------------------------------------------------------

@message("cluster.status_poll")
class StatusPoll:
    """Controller → member: report your load now."""


@message("cluster.hub_report")
class HubReport:
    """One hub instance on a member."""

    name: str
    dynamic: bool
    sessions: int
    mac_entries: int = 0
    ip_entries: int = 0


@message("cluster.status_report")
class StatusReport:
    """Reply to StatusPoll."""

    points: int
    """The member's own points (controller/points.py)."""
    sessions: int
    tcp_connections: int
    max_sessions: int
    hubs: list[HubReport]
    tickets_outstanding: int = 0
    """Tickets stored and not yet used (counts as load for selection)."""


# -- dynamic hub instances ----------------------------------------------------

@message("cluster.create_hub_instance")
class CreateHubInstance:
    """Controller → member: start an instance of this (dynamic) hub."""

    hub: str


@message("cluster.delete_hub_instance")
class DeleteHubInstance:
    """Controller → member: stop this hub's instance (its sessions end)."""

    hub: str
    reason: str


# -- sessions ---------------------------------------------------------------

@message("cluster.create_ticket")
class CreateTicket:
    """Controller → member: accept one login with this ticket within 60 s."""

    hub: str
    ticket: bytes
    user_name: str
    real_user_name: str
    group: str
    session_name: str
    policy: dict[str, PolicyValue]
    """The session's policy as TicketGrant carries it (SoftEther's are bools and u32s)."""


@message("cluster.ticket_created")
class TicketCreated:
    """Reply to CreateTicket."""

    points: int


# Collective administration (CLUSTERING.md §3.9.10; SoftEther's task calls
# "enumsession", "getsessionstatus", "deletesession", "enummactable",
# "enumiptable", "deletemactable", "deleteiptable"): the controller asks every
# member concurrently and merges the answers with its own. A member answers
# from its running hub instances; a hub it has no instance of has no sessions
# and empty tables. "Not found" (session, table key) is a bus error carrying
# ERR_OBJECT_NOT_FOUND; a local bridge refuses DeleteSession with
# ERR_BRIDGE_CANT_DISCONNECT.

@message("cluster.enum_sessions")
class EnumSessions:
    """Controller → member: list the sessions of one hub. Reply: SessionList."""

    hub: str


@message("cluster.session_row")
class SessionRow:
    """One session as EnumSession lists it (the server's own, unmarked)."""

    name: str
    username: str
    client_ip: str
    client_hostname: str
    created_time: float
    last_comm_time: float
    tcp_connections: int
    max_tcp_connections: int
    packet_bytes: int
    """Bytes both ways (SoftEther's GetTrafficPacketSize)."""
    packet_count: int
    """Packets both ways (GetTrafficPacketNum)."""
    bridge: bool = False
    """A local bridge session (user "Local Bridge")."""
    unique_id: bytes = b""
    """The client's NODE_INFO UniqueId (16 bytes, or empty)."""


@message("cluster.session_list")
class SessionList:
    """Reply to EnumSessions."""

    sessions: list[SessionRow]


@message("cluster.get_session_status")
class GetSessionStatus:
    """Controller → member: one session's details, by name (case-insensitive).
    Reply: SessionDetail, or a bus error ERR_OBJECT_NOT_FOUND."""

    hub: str
    name: str


@message("cluster.session_detail")
class SessionDetail:
    """One session as GetSessionStatus shows it. Byte totals and traffic are
    the client's view (SoftEther's server session counts what the client
    sent as Send)."""

    name: str
    connection_name: str
    username: str
    real_username: str
    client_ip: str
    client_port: int
    client_hostname: str
    client_product: str
    client_version: int
    client_build: int
    created_time: float
    last_comm_time: float
    tcp_connections: int
    max_tcp_connections: int
    use_encrypt: bool
    use_compress: bool
    session_key: bytes
    unique_id: bytes
    sent_bytes: int
    received_bytes: int
    traffic: dict[str, int]
    """SoftEther's traffic names ("Send.UnicastBytes", ...), client's view."""
    bridge: bool


@message("cluster.delete_session")
class DeleteSession:
    """Controller → member: disconnect one session. Reply: Ack, or a bus error
    ERR_OBJECT_NOT_FOUND / ERR_BRIDGE_CANT_DISCONNECT."""

    hub: str
    name: str


@message("cluster.enum_mac_table")
class EnumMacTable:
    """Controller → member: the MAC table of one hub. Reply: MacTable."""

    hub: str


@message("cluster.mac_row")
class MacRow:
    key: int
    """The entry's key on that server (DeleteMacTable names it)."""
    session_name: str
    mac: bytes
    vlan_id: int
    created_time: float
    updated_time: float


@message("cluster.mac_table")
class MacTable:
    """Reply to EnumMacTable."""

    rows: list[MacRow]


@message("cluster.enum_ip_table")
class EnumIpTable:
    """Controller → member: the IP table of one hub. Reply: IpTable."""

    hub: str


@message("cluster.ip_row")
class IpRow:
    key: int
    """The entry's key on that server (DeleteIpTable names it)."""
    session_name: str
    ip: str
    dhcp_allocated: bool
    created_time: float
    updated_time: float


@message("cluster.ip_table")
class IpTable:
    """Reply to EnumIpTable."""

    rows: list[IpRow]


@message("cluster.delete_mac_table")
class DeleteMacTable:
    """Controller → member: delete one MAC table entry. Reply: Ack, or a bus
    error ERR_OBJECT_NOT_FOUND."""

    hub: str
    key: int


@message("cluster.delete_ip_table")
class DeleteIpTable:
    """Controller → member: delete one IP table entry. Reply: Ack, or a bus
    error ERR_OBJECT_NOT_FOUND."""

    hub: str
    key: int
