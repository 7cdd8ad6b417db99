import hashlib
import os

import pytest

from node.softether.errors import Err
from node.softether.protocol_error import ProtocolError
from node.softether.signature import (
    SIGNATURE_BODY, SIGNATURE_TARGET, WATERMARK_SHA1, SignatureError,
    check_signature, check_signature_length, signature_length_ok,
)

# A stand-in "watermark": 1411 bytes starting with a GIF89a header. The real
# image is not in the project; its SHA-1 is checked against the Debian binary
# below when that is installed.
FAKE_WM = b"GIF89a" + bytes(range(256)) * 5 + b"\x00" * (1411 - 6 - 1280)
FAKE_SHA1 = hashlib.sha1(FAKE_WM).digest()
CLIENT_BIN = "/usr/libexec/softether/vpnclient/vpnclient"


@pytest.mark.parametrize("target,body", [
    ("/vpnsvc/connect.cgi", b"VPNCONNECT"),
    ("/VPNSVC/Connect.CGI", b"VPNCONNECT"),           # target is case-insensitive
    ("/vpnsvc/connect.cgi", FAKE_WM),
    ("/vpnsvc/connect.cgi", FAKE_WM + b"\x01" * 1999),
    ("/vpnsvc/connect.cgi", FAKE_WM + b"\x01" * 2000),  # 3411: inclusive upper bound
])
def test_accepted(target, body):
    check_signature(target, body, watermark_sha1=FAKE_SHA1)


@pytest.mark.parametrize("target,body,status,fatal", [
    ("/vpnsvc/connect.cgi", b"vpnconnect", 403, False),      # body is case-sensitive
    ("/vpnsvc/connect.cgi", b"VPNCONNECX", 403, False),
    ("/vpnsvc/connect.cgi", b"X" + FAKE_WM[1:], 403, False),  # not GIF
    ("/vpnsvc/connect.cgi", FAKE_WM[:-1] + b"\x01", 403, False),
    ("/vpnsvc/vpn.cgi", b"VPNCONNECT", 404, False),
    ("/", FAKE_WM, 404, False),
    ("/vpnsvc/connect.cgi", FAKE_WM[:1410], 403, True),       # below the window
    ("/vpnsvc/connect.cgi", FAKE_WM + b"\0" * 2001, 403, True),
    ("/vpnsvc/connect.cgi", b"", 403, True),
    ("/vpnsvc/connect.cgi", b"VPNCONNECT!", 403, True),
])
def test_rejected(target, body, status, fatal):
    with pytest.raises(SignatureError) as info:
        check_signature(target, body, watermark_sha1=FAKE_SHA1)
    err = info.value
    assert isinstance(err, ProtocolError)
    assert (err.http_status, err.fatal, err.code) == (status, fatal, Err.CLIENT_IS_NOT_VPN)


def test_default_digest_rejects_a_stand_in_image():
    with pytest.raises(SignatureError):
        check_signature(SIGNATURE_TARGET, FAKE_WM)
    check_signature(SIGNATURE_TARGET, SIGNATURE_BODY)


@pytest.mark.parametrize("n,ok", [(10, True), (11, False), (1410, False), (1411, True),
                                  (3411, True), (3412, False), (0, False), (65536, False)])
def test_length_window(n, ok):
    assert signature_length_ok(n) is ok
    if ok:
        check_signature_length(n)
    else:
        with pytest.raises(SignatureError):
            check_signature_length(n)


@pytest.mark.softether
@pytest.mark.skipif(not os.path.exists(CLIENT_BIN), reason="Debian softether-vpnclient not installed")
def test_real_client_watermark_is_accepted():
    # The watermark lives in the real client's binary; read it from there at
    # test time (it is never stored in this project).
    data = open(CLIENT_BIN, "rb").read()
    start = data.find(bytes.fromhex("474946383961c8003300"))
    assert start >= 0
    wm = data[start:start + 1411]
    assert hashlib.sha1(wm).digest() == WATERMARK_SHA1
    check_signature(SIGNATURE_TARGET, wm + os.urandom(500))
    check_signature(SIGNATURE_TARGET, wm)
