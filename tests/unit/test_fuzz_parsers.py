"""The adversarial probe's fuzzers (issue 13), kept as hypothesis tests:
valid messages built with our own encoders (PACKs, data blocks, the
negotiation's HTTP, bus envelopes), then mutated (bytes flipped, inserted,
deleted, the stream cut or repeated), fed to our decoders. Each decoder may
only answer with its one error type (a ProtocolError; the bus's
BadMessage) or a valid result: never another exception.

Each test runs FUZZ_EXAMPLES examples: 150 by default (CI), more with
VPNCLUSTER_FUZZ_EXAMPLES=100000 for a long run.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import typing

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.softether.blocks import BlockDecoder, encode_frames, encode_keepalive
from node.softether.handshake import AuthRequest, AuthType, Hello, Welcome
from node.softether.httpmsg import PackClientChannel, PackServerChannel
from node.softether.pack import Pack
from node.softether.protocol_error import ProtocolError
from vpnbus.envelope import REGISTRY, BadMessage, Envelope, decode, encode

importlib.import_module("controller.messages")   # registers the bus messages
FUZZ_EXAMPLES = int(os.environ.get("VPNCLUSTER_FUZZ_EXAMPLES", "150"))
fuzz = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """`valid` with a few random edits."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "cut", "repeat"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x01]))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        elif kind == "cut":
            del data[at:]
        elif kind == "repeat":
            data[at:at] = data[at:at + draw(st.integers(1, 64))]
    return bytes(data)


def _splits(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


def _packs() -> list[bytes]:
    auth = AuthRequest(hubname="HUB", username="alice", authtype=AuthType.PASSWORD, secure_password=b"s" * 20)
    welcome = Welcome(session_name="SID-ALICE-1", connection_name="CID-1", session_key=b"k" * 20,
                      session_key_32=7, use_compress=False, timeout_ms=20_000)
    return [p.encode() for p in (Hello(random=b"r" * 20, hello="x", version=1, build=2).to_pack(),
                                 auth.to_pack(), welcome.to_pack())]


PACKS = _packs()


@fuzz
@given(st.sampled_from(PACKS).flatmap(mutated))
def test_a_mutated_pack_decodes_or_is_a_protocol_error(data):
    try:
        Pack.decode(data)
    except ProtocolError:
        pass


BLOCK_STREAMS = [encode_frames([b"\x01" * 60, b"\x02" * 1514]), encode_keepalive(b"k" * 32),
                 encode_frames([b"\x03" * 100, b"\x04" * 64], compress=True)]


@fuzz
@given(st.sampled_from([False, False, True]), st.data())
def test_a_mutated_block_stream_decodes_or_is_a_protocol_error(compress, data):
    stream = BLOCK_STREAMS[2] if compress else data.draw(st.sampled_from(BLOCK_STREAMS[:2]))
    bad = data.draw(mutated(stream))
    decoder = BlockDecoder(compress=compress)
    try:
        for piece in _splits(data.draw, bad):
            decoder.feed(piece)
    except ProtocolError:
        pass


def _negotiation_stream() -> bytes:
    client = PackClientChannel("x")
    auth = AuthRequest(hubname="HUB", username="alice", authtype=AuthType.PASSWORD, secure_password=b"s" * 20)
    second = PackClientChannel("x")   # a channel in the state to write the login
    return client.signature_request() + second.send_pack(auth.to_pack(), rand_bytes=None)


NEGOTIATION = _negotiation_stream()


@fuzz
@given(st.data())
def test_a_mutated_negotiation_is_read_or_is_a_protocol_error(data):
    """The server channel as the VPN handler drives it: signature, hello, a
    PACK, then SoftEther's epilogue read (which finding 8 broke)."""
    channel = PackServerChannel()
    bad = data.draw(mutated(NEGOTIATION))
    try:
        for piece in _splits(data.draw, bad):
            channel.receive_data(piece)
        if channel.next_signature():
            channel.send_pack(Hello(random=b"r" * 20, hello="x", version=1, build=2).to_pack())
            channel.next_pack()
    except ProtocolError:
        pass
    try:
        channel.next_pack()   # the epilogue
    except ProtocolError:
        pass


def _bus_messages() -> st.SearchStrategy[object]:
    classes = [REGISTRY.class_of(tag) for tag in sorted(REGISTRY._by_tag)]
    return st.one_of([st.builds(cls) for cls in classes if cls is not None])


@fuzz
@given(_bus_messages(), st.data())
def test_a_mutated_bus_envelope_decodes_or_is_bad_message(message, data):
    try:
        frame = encode(Envelope(message=message, id=data.draw(st.integers(1, 2 ** 40))))
    except (ValueError, TypeError, OverflowError):
        return   # a value our own encoder refuses (e.g. an int msgpack cannot carry): not a frame
    try:
        decode(data.draw(mutated(frame)))
    except BadMessage:
        pass


PLAIN = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 64 - 1) | st.floats()
                     | st.text(max_size=8) | st.binary(max_size=8),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=6) | st.binary(max_size=6), inner, max_size=4),
                     max_leaves=12)


@fuzz
@given(st.sampled_from(sorted(REGISTRY._by_tag)), st.data())
def test_a_body_with_mixed_bytes_and_str_keys_is_bad_message(tag, data):
    """Issue 13 finding 7: a body with both a bytes key and a str key must be
    BadMessage, never another exception (each frame logged a traceback)."""
    cls = REGISTRY.class_of(tag)
    names = [f.name for f in dataclasses.fields(typing.cast(typing.Any, cls))] + ["x"]
    keys = st.sampled_from(names) | st.sampled_from([n.encode() for n in names])
    body = data.draw(st.dictionaries(keys, PLAIN, min_size=1, max_size=6))
    body[b"zz"], body["yy"] = 1, 2
    frame = msgpack.packb({"v": 1, "type": tag, "id": 1, "reply_to": None, "body": body}, use_bin_type=True)
    try:
        decode(frame)
    except BadMessage:
        return
    raise AssertionError("a body with undeclared keys was accepted")
