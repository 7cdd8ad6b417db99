import pytest

from node.softether.sha0 import (
    EMPTY_PASSWORD_HASH, hash_admin_password, hash_password, secure_password, sha0,
)

# Vectors: the published SHA-0("abc"), and values cross-checked against
# SoftEther's MY_SHA0 routine (softether-protocol.md §4).
VECTORS = [
    (b"abc", "0164b8a914cd2a5e74c4f7ff082c4d97f1edf880"),
    (b"", "f96cea198ad1dd5617ac084a3d92c6107708c0ef"),
    (b"passwordTEST", "94482916611d020e048d73da42bb3aa9813ca8d2"),
    (b"pwADMINISTRATOR", "ac62a4c9583034939c93e0f03b6e7be22bc6193e"),
]


@pytest.mark.parametrize("data,digest", VECTORS)
def test_vectors(data, digest):
    assert sha0(data).hex() == digest


def test_multi_block_differs_from_sha1():
    import hashlib
    data = bytes(range(256)) * 3  # several 64-byte blocks plus padding block
    assert len(sha0(data)) == 20
    assert sha0(data) != hashlib.sha1(data).digest()


def test_password_helpers():
    key = hash_password("test", "password")
    assert key.hex() == "94482916611d020e048d73da42bb3aa9813ca8d2"
    assert secure_password(key, bytes(range(20))).hex() == "627b13bdcd91082aeea1b874c961d437847bca90"
    assert hash_password("administrator", "pw").hex() == "ac62a4c9583034939c93e0f03b6e7be22bc6193e"
    assert hash_admin_password("") == EMPTY_PASSWORD_HASH


def test_bytes_that_are_not_utf8_are_hashed_as_received():
    # a PACK STR with byte 0xff decodes to "\udcff" (surrogateescape); SoftEther hashes the raw byte
    assert hash_password("b\udcff", "p\udcfe") == sha0(b"p\xfe" + b"B\xff")


def test_upper_case_is_ascii_only():
    # SoftEther's StrUpper touches a-z only
    assert hash_password("é", "x") == sha0("x".encode() + "é".encode())
