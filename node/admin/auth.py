"""Who is calling the admin API (Admin.c JsonRpcAuthLogin).

Credentials come from `X-VPNADMIN-HUBNAME` + `X-VPNADMIN-PASSWORD`, or from
`Authorization: Basic` (user empty or "administrator" = server admin, else a
hub name). The password is hashed with SHA-0 and compared with the stored
hash in constant time. Unlike SoftEther we never run with an empty server
password (vpnd always sets one), so there is no "anyone is admin" case; a hub
administrator needs a non-empty hub password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from node.softether.sha0 import EMPTY_PASSWORD_HASH, hash_admin_password
from node.state.model import Server


class AdminAuthFailed(Exception):
    """Wrong or missing admin credentials; the listener answers HTTP 401."""


def credentials(headers: dict[str, str]) -> tuple[str, str]:
    """(hub name or "", password) from the request headers (lower-case names)."""
    if "x-vpnadmin-password" in headers or "x-vpnadmin-hubname" in headers:
        return headers.get("x-vpnadmin-hubname", "").strip(), headers.get("x-vpnadmin-password", "")
    auth = headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise AdminAuthFailed("malformed Basic authorization") from None
        hub = "" if user.lower() in ("", "administrator") else user
        return hub, password
    return "", ""


_HASH_CACHE: dict[bytes, bytes] = {}
_HASH_CACHE_MAX = 64


def _admin_hash(password: str) -> bytes:
    """SHA0(password), memoised: every admin call carries the password and
    our SHA-0 is pure Python (a tenth of a GetServerInfo call). Keyed by a
    SHA-256 of the password so the cache holds no clear text."""
    key = hashlib.sha256(password.encode()).digest()
    found = _HASH_CACHE.get(key)
    if found is None:
        if len(_HASH_CACHE) >= _HASH_CACHE_MAX:
            _HASH_CACHE.clear()
        found = _HASH_CACHE[key] = hash_admin_password(password)
    return found


def authenticate(config: Server, hub: str, password: str) -> str | None:
    """Return None for the server admin or the hub's name for a hub admin;
    raise AdminAuthFailed otherwise."""
    supplied = _admin_hash(password)
    if not hub:
        if hmac.compare_digest(supplied, config.admin_password_hash):
            return None
        raise AdminAuthFailed("wrong server administrator password")
    found = config.find_hub(hub)
    if found is None:
        raise AdminAuthFailed(f"no hub {hub!r}")
    stored = found.hashed_password
    if not stored or stored == EMPTY_PASSWORD_HASH:
        raise AdminAuthFailed(f"hub {found.name!r} has no administrator password")
    if hmac.compare_digest(supplied, stored):
        return found.name
    raise AdminAuthFailed(f"wrong administrator password for hub {found.name!r}")
