"""Who is calling the admin API (Admin.c JsonRpcAuthLogin).

Credentials come from `X-VPNADMIN-HUBNAME` + `X-VPNADMIN-PASSWORD`, or from
`Authorization: Basic` (user empty or "administrator" = server admin, else a
hub name). The password is hashed with SHA-0 and compared with the stored
hash in constant time. Unlike SoftEther we never run with an empty server
password (vpnd always sets one), so there is no "anyone is admin" case; a hub
administrator needs a non-empty hub password, and logs in on a standalone
server or the cluster controller only (a member refuses it, as SoftEther's
AdminCheckPassword with ERR_FARM_MEMBER_HUB_ADMIN).
Passwords are hashed as the bytes the client sent (SoftEther hashes the raw
header), so a UTF-8 password works: the listener hands headers over decoded
as Latin-1, and `credentials` turns them back into those bytes, read as
UTF-8 (undecodable bytes kept as surrogates, hashed unchanged).
A password longer than MAX_PASSWORD_CHARS is refused before it is hashed
(our SHA-0 is pure Python: a 60 KB one cost ~47 ms of the event loop), and
no refusal names what a malformed header carried (a Basic value without a
colon is likely a password).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import time
from typing import TYPE_CHECKING

from node.admin.jsonvalue import MAX_PASSWORD_CHARS
from node.softether.sha0 import EMPTY_PASSWORD_HASH, sha0
from node.state.model import SERVER_MEMBER, Server

if TYPE_CHECKING:
    from node.server import VpnServer

log = logging.getLogger("vpnd.admin")


class AdminAuthFailed(Exception):
    """Wrong or missing admin credentials; the listener answers HTTP 401."""


def _utf8(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def credentials(headers: dict[str, str]) -> tuple[str, str]:
    """(hub name or "", password) from the request headers (lower-case names,
    values decoded as Latin-1). As HttpParseBasicAuthHeader: the
    X-VPNADMIN-PASSWORD header, when present, wins over Basic; either way
    the user "administrator" (any case) or an empty one is the server
    administrator, any other is a hub name."""
    if "x-vpnadmin-password" in headers:
        user = _utf8(headers.get("x-vpnadmin-hubname", "").encode("latin-1")).strip()
        password = _utf8(headers["x-vpnadmin-password"].encode("latin-1"))
    else:
        auth = headers.get("authorization", "")
        if auth[:6].lower() != "basic ":
            return "", ""
        try:
            user, colon, password = _utf8(base64.b64decode(auth[6:].strip(), validate=True)).partition(":")
        except (binascii.Error, ValueError):
            raise AdminAuthFailed("malformed Basic authorization") from None
        if not colon:
            raise AdminAuthFailed("Basic authorization without a ':' between user and password")
    return ("" if user.lower() in ("", "administrator") else user), password


_HASH_CACHE: dict[bytes, bytes] = {}
_HASH_CACHE_MAX = 64


def admin_hash(password: str) -> bytes:
    """SHA0(password), memoised: every admin call carries the password and
    our SHA-0 is pure Python (a tenth of a GetServerInfo call). Keyed by a
    SHA-256 of the password so the cache holds no clear text."""
    raw = password.encode("utf-8", "surrogateescape")
    key = hashlib.sha256(raw).digest()
    found = _HASH_CACHE.get(key)
    if found is None:
        if len(_HASH_CACHE) >= _HASH_CACHE_MAX:
            _HASH_CACHE.clear()
        found = _HASH_CACHE[key] = sha0(raw)
    return found


def address_of(peer: str) -> str:
    """The address of "ip:port" or "[ip6]:port": what per-address limits key on."""
    return peer.rpartition(":")[0].strip("[]") or peer


def login_wait(server: "VpnServer", peer: str) -> float:
    """Seconds `peer`'s address must still wait after failed logins (0: it may try)."""
    return server.admin_backoff.wait(address_of(peer), time.monotonic())


def login_refused(server: "VpnServer", peer: str, endpoint: str, why: str, *, checked: bool = True) -> None:
    """Every refused credential of the listener comes here, whichever
    endpoint refused it ("api": the admin API, "vpncmd": the binary admin
    RPC, "metrics": GET /metrics): the one place for per-address limits on
    guessing. `checked`: the credential was checked and wrong, counted for
    the address (after a few failures it must wait, vpnbus/auth_backoff.py)
    and logged in summary, not per guess; False: refused unchecked while
    the address waits (the wait does not grow)."""
    server.metrics.auth_failures.labels(endpoint).inc()
    if not checked:
        return
    line = server.admin_backoff.failed(address_of(peer), time.monotonic())
    if line is not None:
        log.warning("%s login refused from %s: %s%s", "admin" if endpoint == "api" else endpoint, peer, why,
                    line.suffix())


def login_succeeded(server: "VpnServer", peer: str) -> None:
    """An administrator logged in from `peer`: its address's failures are forgotten."""
    server.admin_backoff.succeeded(address_of(peer))


def authenticate(config: Server, hub: str, password: str) -> str | None:
    """Return None for the server admin or the hub's name for a hub admin;
    raise AdminAuthFailed otherwise."""
    if len(password) > MAX_PASSWORD_CHARS:
        raise AdminAuthFailed(f"password longer than {MAX_PASSWORD_CHARS} characters")
    supplied = admin_hash(password)
    if not hub:
        if hmac.compare_digest(supplied, config.admin_password_hash):
            return None
        raise AdminAuthFailed("wrong server administrator password")
    if config.farm.server_type == SERVER_MEMBER:
        # AdminCheckPassword: ERR_FARM_MEMBER_HUB_ADMIN; hubs are administered
        # on the controller, a member only by its server administrator (§3.9.10)
        raise AdminAuthFailed("hub administrators log in on the cluster controller, not on a member")
    found = config.find_hub(hub)
    if found is None:
        raise AdminAuthFailed(f"no hub {hub!r}")
    stored = found.hashed_password
    if not stored or stored == EMPTY_PASSWORD_HASH:
        raise AdminAuthFailed(f"hub {found.name!r} has no administrator password")
    if hmac.compare_digest(supplied, stored):
        return found.name
    raise AdminAuthFailed(f"wrong administrator password for hub {found.name!r}")
