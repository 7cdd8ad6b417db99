"""SHA-0 (FIPS 180, 1993), the hash SoftEther uses for every password.

hashlib has no SHA-0 (OpenSSL 3 removed it). SHA-0 is SHA-1 without the
one-bit rotation in the message schedule; IVs, rounds, constants and padding
are SHA-1's. SoftEther's routine is MY_SHA0_Transform (Mayaqua/Encrypt.c).
Speed is not a concern: it hashes a password once per login.
"""

from __future__ import annotations

import struct

_IV: tuple[int, ...] = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0)
_MASK = 0xFFFFFFFF


def _rotl(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _MASK


def _compress(state: tuple[int, ...], chunk: bytes) -> tuple[int, ...]:
    w = list(struct.unpack(">16I", chunk))
    for t in range(16, 80):
        w.append(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16])  # no rotation: SHA-0
    a, b, c, d, e = state
    for t in range(80):
        if t < 20:
            f, k = (b & c) | (~b & d), 0x5A827999
        elif t < 40:
            f, k = b ^ c ^ d, 0x6ED9EBA1
        elif t < 60:
            f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
        else:
            f, k = b ^ c ^ d, 0xCA62C1D6
        a, b, c, d, e = (_rotl(a, 5) + f + e + k + w[t]) & _MASK, a, _rotl(b, 30), c, d
    return tuple((x + y) & _MASK for x, y in zip(state, (a, b, c, d, e)))


def sha0(data: bytes) -> bytes:
    """The 20-byte SHA-0 digest of `data`."""
    padded = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack(">Q", len(data) * 8)
    state = _IV
    for off in range(0, len(padded), 64):
        state = _compress(state, padded[off:off + 64])
    return struct.pack(">5I", *state)


def hash_password(username: str, password: str) -> bytes:
    """A user's stored key: SHA0(password || upper-cased user name), ASCII-only upper.

    SoftEther hashes the raw bytes; strings decoded from a PACK keep bytes that
    are not UTF-8 as surrogates (pack.py), and they are hashed as those bytes."""
    upper = "".join(ch.upper() if "a" <= ch <= "z" else ch for ch in username)
    return sha0(password.encode("utf-8", "surrogateescape") + upper.encode("utf-8", "surrogateescape"))


def hash_admin_password(password: str) -> bytes:
    """Server and hub admin passwords as SoftEther stores them: SHA0(password)."""
    return sha0(password.encode())


def secure_password(hashed: bytes, random: bytes) -> bytes:
    """The challenge response: SHA0(stored hash || the server's 20 random bytes)."""
    return sha0(hashed + random)


EMPTY_PASSWORD_HASH = sha0(b"")
