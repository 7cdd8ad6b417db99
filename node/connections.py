"""The listener's live TCP connections, as SoftEther's Cedar ConnectionList
(what EnumConnection, GetConnectionInfo and DisconnectConnection see).

A connection is registered when the listener admits it (Listener.c
AddConnection) with the name CID-<n>, n counting from 1 for the process,
and leaves the list when it closes or when it becomes a VPN session: SoftEther
removes a connection from the list once its login succeeded (Protocol.c
DelConnection after CONNECTION_STATUS_ESTABLISHED), so a connected client's
session is managed with the session methods, not these. What the list holds
is connections still negotiating (type INIT, LOGIN...), admin RPC
connections (JSON-RPC and vpncmd's binary RPC) and other HTTP requests.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

# CONNECTION_TYPE_* in SoftEther's Cedar/Cedar.h
TYPE_INIT = 1          # negotiating: TLS, HTTP, the signature, the hello
TYPE_LOGIN = 2         # the `login` request is being answered
TYPE_ADDITIONAL = 3    # an `additional_connect` request
TYPE_ADMIN_RPC = 5     # the admin API: JSON-RPC or vpncmd's binary RPC
TYPE_ENUM_HUB = 6      # the `enum_hub` request


@dataclass(slots=True)
class TcpConnection:
    name: str                  # "CID-<n>"
    ip: str
    port: int
    connected_at: float        # wall-clock seconds
    close: Callable[[], None] = field(repr=False)
    """Ends the connection at once (the listener's transport abort)."""
    type: int = TYPE_INIT


class ConnectionRegistry:
    """Connections by the key the listener gives each (its stream writer)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._numbers = itertools.count(1)
        self._by_key: dict[object, TcpConnection] = {}

    def add(self, key: object, ip: str, port: int, close: Callable[[], None]) -> TcpConnection:
        conn = TcpConnection(f"CID-{next(self._numbers)}", ip, port, self._clock(), close)
        self._by_key[key] = conn
        return conn

    def set_type(self, key: object, type_: int) -> None:
        conn = self._by_key.get(key)
        if conn is not None:
            conn.type = type_

    def remove(self, key: object) -> None:
        """Closed."""
        self._by_key.pop(key, None)

    def established(self, key: object) -> None:
        """Logged in: a VPN session leaves the list (module prose); an admin
        RPC connection stays, as SoftEther lists it ("Management RPC")."""
        conn = self._by_key.get(key)
        if conn is not None and conn.type != TYPE_ADMIN_RPC:
            del self._by_key[key]

    def find(self, name: str) -> TcpConnection | None:
        """By name, any case (SoftEther compares connection names with StrCmpi)."""
        key = name.lower()
        return next((c for c in self._by_key.values() if c.name.lower() == key), None)

    def disconnect(self, name: str) -> bool:
        """Close the connection named `name`; False when there is none."""
        conn = self.find(name)
        if conn is None:
            return False
        conn.close()
        return True

    def __iter__(self) -> Iterator[TcpConnection]:
        return iter(list(self._by_key.values()))

    def __len__(self) -> int:
        return len(self._by_key)
