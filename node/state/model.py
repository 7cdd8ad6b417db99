"""The node's persistent configuration as typed records, and its file format.

File format (JSON, written by node/state/store.py):
    {"format": "vpncluster-config", "version": 1, "serial": n,
     "server": {...}, "farm": {...}, "hubs": [{..., "users": [...]}]}
`serial` grows by one with every saved change. Password material is stored as
SoftEther stores it (SHA-0 hashes, hex), never in clear. Names of hubs and
users compare case-insensitively, as in SoftEther.

The records are encoded and checked by the one record codec the bus uses too
(vpnbus/records.py), with bytes as hex text (JSON has no bytes) and unknown
keys skipped, as this file format always did.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from vpnbus.records import BytesForm, Codec

FORMAT = "vpncluster-config"
VERSION = 1

SERVER_STANDALONE, SERVER_CONTROLLER, SERVER_MEMBER = 0, 1, 2
HUB_STANDALONE, HUB_STATIC, HUB_DYNAMIC = 0, 1, 2
AUTH_ANONYMOUS, AUTH_PASSWORD = 0, 1


@dataclass(frozen=True)
class User:
    """Never changed in place (SetUser makes a new one): configs share their
    users, so copying or comparing a config of 100,000 users costs little."""

    name: str
    auth_type: int = AUTH_PASSWORD
    hashed_key: bytes = b""          # SHA0(password || NAME)
    group: str = ""
    realname: str = ""
    note: str = ""
    created_time: float = 0.0
    updated_time: float = 0.0
    expire_time: float = 0.0


@dataclass
class Hub:
    name: str
    hub_type: int = HUB_STANDALONE
    online: bool = True
    max_session: int = 0
    no_enum: bool = False
    hashed_password: bytes = b""     # SHA0(admin password), hub administrator
    secure_password: bytes = b""     # SHA0(admin password || "ADMINISTRATOR")
    created_time: float = 0.0
    users: list[User] = field(default_factory=list)

    def find_user(self, name: str) -> User | None:
        key = name.lower()
        return next((u for u in self.users if u.name.lower() == key), None)


@dataclass
class Drain:
    """A member the operator drains (controller/drain.py): kept in the config,
    so a controller restart drains it still."""
    member_key: bytes                  # its bus (CURVE) public key: stable across its restarts
    rate: int = 5                      # sessions moved per second at most


@dataclass
class Farm:
    server_type: int = SERVER_STANDALONE
    weight: int = 100
    controller_only: bool = False
    controller_host: str = ""
    controller_port: int = 0
    member_password_hash: bytes = b""  # SHA0(controller's admin password)
    public_ip: str = ""                # "" = the address used to reach the controller
    public_ports: list[int] = field(default_factory=list)
    bus_port: int = 0                  # controller's vpnbus ROUTER port; 0 = pick one at role start, then saved
    drains: list[Drain] = field(default_factory=list)  # controller: members being drained


@dataclass
class Bridge:
    """A local bridge: hub instance ↔ a TAP device made by vpnd or an existing NIC."""
    hub: str
    device: str
    tap: bool = False


@dataclass
class Server:
    admin_password_hash: bytes
    listeners: list[str]             # "ADDR:PORT"
    serial: int = 0
    farm: Farm = field(default_factory=Farm)
    hubs: list[Hub] = field(default_factory=list)
    bridges: list[Bridge] = field(default_factory=list)
    metrics_password_hash: bytes = b""
    """SHA0(the scrape credential of GET /metrics); empty = the endpoint is off (404)."""
    cipher_name: str = "~DEFAULT~"
    """The listeners' TLS cipher string (SetServerCipher; node/tls_cipher.py), SoftEther's CipherName."""

    def find_hub(self, name: str) -> Hub | None:
        key = name.lower()
        return next((h for h in self.hubs if h.name.lower() == key), None)


def listener_address(text: str) -> tuple[str, int]:
    """(address, port) of a listener "ADDR:PORT" ("[::1]:443" → "::1"; an
    empty address is 0.0.0.0). ValueError when it is not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected ADDR:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


CODEC = Codec(bytes_form=BytesForm.HEX, unknown_fields="ignore")
"""The config file's form of the records: bytes as hex text, unknown keys skipped."""

_RECORD_TYPES = (Hub, Drain, Farm, Bridge, Server)   # copied; User is immutable
_CONTAINERS = (list, *_RECORD_TYPES)

# Every config change copies the whole config inside the event loop, so the
# copy walks the records' __dict__ directly (several times faster than
# copy.deepcopy), and users, being immutable, are shared: a config of
# 100,000 users copies 1,000 lists of references. The codec compiles each
# record's fields once.


def _clone(obj: Any) -> Any:
    if isinstance(obj, _RECORD_TYPES):
        new = object.__new__(type(obj))
        new.__dict__.update({k: _clone(v) if isinstance(v, _CONTAINERS) else v for k, v in vars(obj).items()})
        return new
    if isinstance(obj, list):
        if obj and isinstance(obj[0], User):  # a hub's users (lists hold one kind of record)
            return list(obj)
        return [_clone(v) for v in obj]
    return obj     # str, bytes, numbers, bool: immutable


def clone(server: Server) -> Server:
    """A deep copy of the config (records and lists copied, values shared:
    they are immutable)."""
    copy: Server = _clone(server)
    return copy


def to_doc(server: Server) -> dict[str, Any]:
    doc = CODEC.encode(server)
    doc["format"], doc["version"] = FORMAT, VERSION
    return doc


def from_doc(doc: dict[str, Any]) -> Server:
    """Decode and check a config document; ValueError names what is wrong
    (vpnbus.records.RecordError, a ValueError, for a missing or mistyped field)."""
    if doc.get("format") != FORMAT:
        raise ValueError(f'format is not "{FORMAT}"')
    if doc.get("version") != VERSION:
        raise ValueError(f"unsupported version {doc.get('version')!r} (this vpnd reads {VERSION})")
    body = {k: v for k, v in doc.items() if k not in ("format", "version")}
    server = CODEC.decode(Server, body, "config")
    _check_server(server)
    for hub in server.hubs:
        _check_hub(hub)
    return server


def _check_server(server: Server) -> None:
    """What from_doc checks beyond the fields' types, but for what is
    inside a hub (_check_hub)."""
    if len(server.admin_password_hash) != 20:
        raise ValueError("config.admin_password_hash: not a 20-byte hash")
    if len(server.metrics_password_hash) not in (0, 20):
        raise ValueError("config.metrics_password_hash: neither empty nor a 20-byte hash")
    for text in server.listeners:
        try:
            listener_address(text)
        except ValueError as exc:
            raise ValueError(f"config.listeners: {exc}") from None
    names = [h.name.lower() for h in server.hubs]
    if len(names) != len(set(names)):
        raise ValueError("config.hubs: duplicate hub names")


def _check_hub(hub: Hub) -> None:
    users = [u.name.lower() for u in hub.users]
    if len(users) != len(set(users)):
        raise ValueError(f"config.hubs[{hub.name}].users: duplicate user names")


V = TypeVar("V")


class PerHubCache(Generic[V]):
    """What is derived from each hub of a config (its record for the bus, its
    text in the file), kept from one config to the next: a hub equal to the
    one derived from last time keeps its value. Configs change a hub at a
    time, and comparing a hub costs a tenth of deriving anything from it
    (users are shared between configs, so mostly an identity check)."""

    def __init__(self, derive: Callable[[Hub], V]) -> None:
        self._derive = derive
        self._last: dict[str, tuple[Hub, V]] = {}

    def values(self, hubs: list[Hub]) -> list[V]:
        """One value per hub, in order; only hubs that changed are derived
        again. An error deriving one leaves the cache as it was."""
        out, kept = [], {}
        for hub in hubs:
            key = hub.name.lower()
            last = self._last.get(key)
            value = last[1] if last is not None and last[0] == hub else self._derive(hub)
            kept[key] = (hub, value)
            out.append(value)
        self._last = kept
        return out


def _hub_text(hub: Hub) -> str:
    """A hub as the config file holds it, checked as from_doc checks it."""
    doc = CODEC.encode(hub)
    CODEC.decode(Hub, doc, f"config.hubs[{hub.name}]")
    _check_hub(hub)
    return json.dumps(doc, sort_keys=True)


class ConfigWriter:
    """The config file's bytes for a Server: what `to_doc` and json.dumps
    make (sorted keys, no indent), and checked as from_doc checks a loaded
    file, but hub by hub from a PerHubCache, so that a change to one hub of
    a config with 100,000 users encodes and checks that hub only."""

    def __init__(self) -> None:
        self._hubs = PerHubCache(_hub_text)

    def dumps(self, server: Server) -> bytes:
        _check_server(server)
        texts = self._hubs.values(server.hubs)
        rest = to_doc(dataclasses.replace(server, hubs=[]))
        CODEC.decode(Server, {k: v for k, v in rest.items() if k not in ("format", "version")}, "config")
        head, sep, tail = json.dumps(rest, sort_keys=True).partition('"hubs": []')
        assert sep, "the document has a hubs key"
        return (head + '"hubs": [' + ", ".join(texts) + "]" + tail).encode("utf-8") + b"\n"
