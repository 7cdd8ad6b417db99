"""The "signature" POST that opens every SE-VPN connection (§3.2 step 2).

A client proves it speaks SE-VPN by sending `POST /vpnsvc/connect.cgi`
with either the 10 ASCII bytes `VPNCONNECT`, or SoftEther's 1411-byte GIF89a
"watermark" followed by 0..1999 random bytes (what the real client sends).
The server answers the hello PACK (handshake.py) if it is right.

SoftEther's check (`ServerDownloadSignature`, Cedar/Protocol.c), mirrored:
- Content-Length must be 10, or within [1411, 1411 + 2000] (MAX_WATERMARK_SIZE
  = watermark + 2 * HTTP_PACK_RAND_SIZE_MAX); otherwise 403 and the
  connection ends, before the body is read (`check_signature_length`);
- target `/vpnsvc/connect.cgi`, compared case-insensitively; otherwise 404
  and the server keeps reading (at most 19 requests per connection);
- body `VPNCONNECT` exactly, or its first 1411 bytes equal the watermark;
  otherwise 403 and the server keeps reading.
We do not ship the watermark: we compare the SHA-1 of the first 1411 bytes
with the SHA-1 of SoftEther's watermark, bb85983434a1eed645d8657dccf8d26a9bb4eaa7
(the image starts with the GIF89a header), which accepts exactly the same
bodies short of a SHA-1 second preimage. Our own client sends `VPNCONNECT`.
"""

from __future__ import annotations

import hashlib

from node.softether.errors import Err
from node.softether.protocol_error import ProtocolError

SIGNATURE_TARGET = "/vpnsvc/connect.cgi"  # HTTP_VPN_TARGET2
SIGNATURE_BODY = b"VPNCONNECT"  # HTTP_VPN_TARGET_POSTDATA, what our client sends
SIGNATURE_CONTENT_TYPE = "image/jpeg"  # what SoftEther's client declares
WATERMARK_SIZE = 1411
WATERMARK_MAX_SIZE = WATERMARK_SIZE + 2000
WATERMARK_SHA1 = bytes.fromhex("bb85983434a1eed645d8657dccf8d26a9bb4eaa7")
GIF_HEADER = b"GIF89a"
MAX_SIGNATURE_REQUESTS = 19  # requests a server reads before giving up


class SignatureError(ProtocolError):
    """The signature request is wrong; send `http_status` back.

    `fatal`: close the connection after the reply (a bad length, as
    SoftEther does); otherwise the server may read the next request, up to
    MAX_SIGNATURE_REQUESTS. The code is ERR_CLIENT_IS_NOT_VPN.
    """

    def __init__(self, message: str, http_status: int, fatal: bool) -> None:
        super().__init__(message, Err.CLIENT_IS_NOT_VPN)
        self.http_status = http_status
        self.fatal = fatal


def signature_length_ok(content_length: int) -> bool:
    """True if SoftEther would read a signature body of this length."""
    return content_length == len(SIGNATURE_BODY) or (
        WATERMARK_SIZE <= content_length <= WATERMARK_MAX_SIZE)


def check_signature_length(content_length: int) -> None:
    """Call before reading the body; SignatureError(403, fatal) if too long/short."""
    if not signature_length_ok(content_length):
        raise SignatureError(f"signature body of {content_length} bytes", 403, fatal=True)


def check_signature(target: str, body: bytes, *, watermark_sha1: bytes = WATERMARK_SHA1) -> None:
    """Accept a signature request or raise SignatureError (403/404).

    `watermark_sha1` is a parameter only so tests can use a stand-in image.
    """
    check_signature_length(len(body))
    if target.lower() != SIGNATURE_TARGET:
        raise SignatureError(f"signature target {target!r}", 404, fatal=False)
    if body == SIGNATURE_BODY:
        return
    head = body[:WATERMARK_SIZE]
    if (len(head) == WATERMARK_SIZE and head.startswith(GIF_HEADER)
            and hashlib.sha1(head).digest() == watermark_sha1):
        return
    raise SignatureError("signature body is not the SoftEther watermark", 403, fatal=False)
