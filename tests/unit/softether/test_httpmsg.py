import pytest

from node.softether.blocks import BlockDecoder, Frames, encode_frames
from node.softether.errors import Err
from node.softether.handshake import (
    AuthRequest, Hello, Welcome, noop_pack, parse_login_reply,
)
from node.softether.httpmsg import (
    HttpError, PackClientChannel, PackServerChannel,
)
from node.softether.pack import Pack, PackError
from node.softether.protocol_error import ProtocolError
from node.softether.signature import SignatureError

KEY = bytes(range(20))


def _small_pack():
    p = Pack()
    p.add_int("a", 1)
    return p


SMALL = bytes.fromhex("00000001 00000002 61 00000000 00000001 00000001".replace(" ", ""))

# Exact bytes (one table for build and parse).
SERVER_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Connection: Keep-Alive\r\n"
    b"Content-Length: 21\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Keep-Alive: timeout=15; max=19\r\n"
    b"\r\n" + SMALL
)
CLIENT_REQUEST = (
    b"POST /vpnsvc/vpn.cgi HTTP/1.1\r\n"
    b"Host: 192.0.2.1\r\n"
    b"Connection: Keep-Alive\r\n"
    b"Content-Length: 21\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Keep-Alive: timeout=15; max=19\r\n"
    b"\r\n" + SMALL
)
SIGNATURE_REQUEST = (
    b"POST /vpnsvc/connect.cgi HTTP/1.1\r\n"
    b"Host: 192.0.2.1\r\n"
    b"Connection: Keep-Alive\r\n"
    b"Content-Length: 10\r\n"
    b"Content-Type: image/jpeg\r\n"
    b"Keep-Alive: timeout=15; max=19\r\n"
    b"\r\nVPNCONNECT"
)


def _server_after_signature():
    s = PackServerChannel()
    s.receive_data(SIGNATURE_REQUEST)
    assert s.next_signature() is True
    s.send_pack(Hello(random=KEY).to_pack())
    return s


def _client_after_request():
    c = PackClientChannel("192.0.2.1")
    c.send_pack(_small_pack(), None)
    return c


def test_exact_bytes_sent():
    assert PackClientChannel("192.0.2.1").signature_request() == SIGNATURE_REQUEST
    s = _server_after_signature()
    s.receive_data(CLIENT_REQUEST)
    assert s.next_pack() == _small_pack()
    assert s.send_pack(_small_pack(), None) == SERVER_RESPONSE
    c = PackClientChannel("192.0.2.1")
    assert c.send_pack(_small_pack(), None) == CLIENT_REQUEST


def test_no_header_value_is_ever_empty():
    with pytest.raises(ValueError):
        PackClientChannel("")
    for raw in (SERVER_RESPONSE, CLIENT_REQUEST, SIGNATURE_REQUEST):
        head = raw.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
        assert all(line.split(b":", 1)[1].strip() for line in head)


@pytest.mark.parametrize("split", ["whole", "bytes"])
def test_server_reads_pack_whole_and_byte_at_a_time(split):
    s = _server_after_signature()
    chunks = [CLIENT_REQUEST] if split == "whole" else [CLIENT_REQUEST[i:i + 1] for i in range(len(CLIENT_REQUEST))]
    got = []
    for chunk in chunks:
        s.receive_data(chunk)
        p = s.next_pack()
        if p is not None:
            got.append(p)
    assert got == [_small_pack()]


@pytest.mark.parametrize("split", ["whole", "bytes"])
def test_client_reads_pack_and_keeps_trailing_block_bytes(split):
    c = _client_after_request()
    blocks = encode_frames([b"frame-1", b"frame-2"])
    stream = SERVER_RESPONSE + blocks
    chunks = [stream] if split == "whole" else [stream[i:i + 1] for i in range(len(stream))]
    got = []
    for chunk in chunks:
        c.receive_data(chunk)
        p = c.next_pack()
        if p is not None:
            got.append(p)
    assert got == [_small_pack()]
    assert c.trailing_data == blocks
    assert BlockDecoder().feed(c.trailing_data) == [Frames([b"frame-1", b"frame-2"])]


def test_full_negotiation_in_memory_then_data_plane():
    c, s = PackClientChannel("127.0.0.1"), PackServerChannel()
    s.receive_data(c.signature_request())
    assert s.next_signature()
    c.receive_data(s.send_pack(Hello(random=KEY).to_pack()))
    hello = Hello.from_pack(c.next_pack())
    auth = AuthRequest(hubname="HUB", username="alice")
    s.receive_data(c.send_pack(auth.to_pack()))
    assert AuthRequest.from_pack(s.next_pack()) == auth
    welcome = Welcome(session_name="SID-ALICE-1", connection_name="CID-1", session_key=KEY)
    # the server may write blocks right behind the welcome
    c.receive_data(s.send_pack(welcome.to_pack()) + encode_frames([b"x" * 60]))
    assert parse_login_reply(c.next_pack()).session_key == KEY
    assert hello.random == KEY
    assert BlockDecoder().feed(c.trailing_data) == [Frames([b"x" * 60])]
    # and the client's first blocks arrive on the server side the same way
    s.receive_data(encode_frames([b"y" * 60]))
    assert BlockDecoder().feed(s.trailing_data) == [Frames([b"y" * 60])]


def test_pencore_padding_is_added_to_a_copy():
    stream = iter(range(100000))
    rand = lambda n: bytes(next(stream) & 0xFF for _ in range(n))  # noqa: E731
    p = _small_pack()
    c = PackClientChannel("h")
    raw = c.send_pack(p, rand)
    assert "pencore" not in p
    s = _server_after_signature()
    s.receive_data(raw)
    got = s.next_pack()
    assert len(got.get_data("pencore")) == 0x00010203 % 1000
    assert got.get_int("a") == 1


def _req(first_line=b"POST /vpnsvc/vpn.cgi HTTP/1.1", ctype=b"application/octet-stream",
         body=SMALL, length=None, extra=b""):
    head = first_line + b"\r\nHost: h\r\n"
    if ctype is not None:
        head += b"Content-Type: " + ctype + b"\r\n"
    if length != "none":
        head += b"Content-Length: " + str(len(body) if length is None else length).encode() + b"\r\n"
    return head + extra + b"\r\n" + body


BAD_REQUESTS = {
    "GET": _req(first_line=b"GET /vpnsvc/vpn.cgi HTTP/1.1", body=b"", length="none"),
    "wrong target": _req(first_line=b"POST /vpnsvc/other.cgi HTTP/1.1"),
    "HTTP/1.0": _req(first_line=b"POST /vpnsvc/vpn.cgi HTTP/1.0"),
    "charset param": _req(ctype=b"application/octet-stream; charset=utf-8"),
    "no content type": _req(ctype=None),
    "no content length": _req(length="none", body=b""),
    "zero length": _req(body=b""),
    "over 65536": _req(body=b"", length=65537),
    "chunked": _req(length="none", body=b"11\r\n" + SMALL + b"\r\n0\r\n\r\n",
                    extra=b"Transfer-Encoding: chunked\r\n"),
    "garbage": b"\x16\x03\x01\x02\x00 not http\r\n\r\n",
}


@pytest.mark.parametrize("raw", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_server_rejects_what_softether_rejects(raw):
    s = _server_after_signature()
    s.receive_data(raw)
    with pytest.raises(HttpError) as info:
        s.next_pack()
    assert isinstance(info.value, ProtocolError)


def test_case_insensitive_target_and_type_are_accepted():
    s = _server_after_signature()
    s.receive_data(_req(first_line=b"POST /VPNSVC/VPN.CGI HTTP/1.1", ctype=b"Application/Octet-Stream"))
    assert s.next_pack() == _small_pack()


def test_bad_pack_body_is_pack_error():
    s = _server_after_signature()
    s.receive_data(_req(body=b"\x00\x00\x00\x01\x00\x00\x00\x00"))
    with pytest.raises(PackError):
        s.next_pack()


def test_65536_byte_body_is_accepted():
    p = Pack()
    p.add_data("d", b"\0" * (65536 - 21))
    s = _server_after_signature()
    s.receive_data(_req(body=p.encode()))
    assert s.next_pack().get_data("d") == b"\0" * (65536 - 21)


def test_peer_closing_mid_message_is_typed():
    s = _server_after_signature()
    s.receive_data(CLIENT_REQUEST[:40])
    assert s.next_pack() is None
    s.receive_data(b"")
    with pytest.raises(HttpError):
        s.next_pack()


def test_server_answers_noop_and_skips_noop_ignore():
    s = _server_after_signature()
    c = PackClientChannel("h")
    s.receive_data(c.send_pack(noop_pack(1), None))
    assert s.next_pack() is None
    reply = s.data_to_send()
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    c.receive_data(reply)
    # the reply is noop=2, which our client skips; nothing else has come yet
    assert c.next_pack() is None
    assert s.data_to_send() == b""
    # noop=2 is not answered, and the real PACK behind it comes through
    s.receive_data(c.send_pack(noop_pack(2), None) + c.send_pack(_small_pack(), None))
    assert s.next_pack() == _small_pack()
    assert s.data_to_send() == b""


def test_too_many_noops():
    s = _server_after_signature()
    c = PackClientChannel("h")
    with pytest.raises(HttpError):
        for _ in range(40):
            s.receive_data(c.send_pack(noop_pack(2), None))
            assert s.next_pack() is None


def test_client_skips_unasked_noop_before_the_real_reply():
    c = _client_after_request()
    s = _server_after_signature()
    s.receive_data(CLIENT_REQUEST)
    s.next_pack()
    unasked = s.send_pack(noop_pack(2), None)
    # the server's real reply is a second response to the same request
    c.receive_data(unasked + SERVER_RESPONSE)
    assert c.next_pack() == _small_pack()


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
    SERVER_RESPONSE.replace(b"application/octet-stream", b"text/html"),
    SERVER_RESPONSE.replace(b"HTTP/1.1", b"HTTP/1.0"),
    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 0\r\n\r\n",
    b"not http at all\r\n\r\n",
], ids=["403", "content type", "1.0", "empty body", "garbage"])
def test_client_rejects_bad_responses(raw):
    c = _client_after_request()
    c.receive_data(raw)
    with pytest.raises(HttpError):
        c.next_pack()


def test_signature_errors_on_server():
    s = PackServerChannel()
    s.receive_data(SIGNATURE_REQUEST.replace(b"/vpnsvc/connect.cgi", b"/vpnsvc/connect.cgx"))
    with pytest.raises(SignatureError) as info:
        s.next_signature()
    assert (info.value.http_status, info.value.fatal) == (404, False)
    assert s.send_status(404).startswith(b"HTTP/1.1 404 Not Found\r\n")
    s.receive_data(SIGNATURE_REQUEST)  # SoftEther reads the next attempt
    assert s.next_signature() is True


def test_signature_bad_length_is_fatal_before_the_body():
    s = PackServerChannel()
    s.receive_data(b"POST /vpnsvc/connect.cgi HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n")
    with pytest.raises(SignatureError) as info:
        s.next_signature()
    assert (info.value.http_status, info.value.fatal) == (403, True)
    assert info.value.code == Err.CLIENT_IS_NOT_VPN
    assert s.send_status(403).startswith(b"HTTP/1.1 403 Forbidden\r\n")


def test_generic_request_for_other_targets():
    s = PackServerChannel()
    s.receive_data(b"POST /api/ HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}")
    req = s.next_request()
    assert (req.method, req.target, req.body, req.header("HOST")) == ("POST", "/api/", b"{}", "h")


def test_generic_request_may_have_no_body():
    s = PackServerChannel()
    s.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    req = s.next_request()
    assert (req.method, req.target, req.body) == ("GET", "/", b"")


def test_signature_without_body_is_fatal():
    s = PackServerChannel()
    s.receive_data(b"POST /vpnsvc/connect.cgi HTTP/1.1\r\nHost: h\r\n\r\n")
    with pytest.raises(SignatureError) as info:
        s.next_signature()
    assert info.value.fatal


@pytest.mark.parametrize("length", [0, 65537])
def test_after_a_refused_content_length_every_read_refuses_again(length):
    """Issue 13 finding 8: h11 had moved into the refused message, and the
    next read (SoftEther's epilogue) met a body with no head: a traceback."""
    server = PackServerChannel()
    client = PackClientChannel("x")
    server.receive_data(client.signature_request())
    assert server.next_signature() is True
    server.send_pack(Pack())
    server.receive_data(b"POST /vpnsvc/vpn.cgi HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                        b"Content-Length: %d\r\n\r\n" % length + b"\0" * length)
    for _ in range(3):
        with pytest.raises(HttpError, match=f"Content-Length {length}"):
            server.next_pack()


def test_a_signature_refused_at_its_head_stays_refused():
    """Found by the negotiation fuzzer: a signature POST without a body is
    refused at its head (length 0); the next read met the refused
    message's end with no head (AssertionError)."""
    server = PackServerChannel()
    server.receive_data(b"POST /vpnsvc/connect.cgi HTTP/1.1\r\nHost: x\r\n\r\n")
    for read in (server.next_signature, server.next_pack):
        with pytest.raises(SignatureError):
            read()
