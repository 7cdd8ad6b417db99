import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.softether.blocks import (
    BlockDecoder, BlockError, Frames, KeepAlive, encode_frames, encode_keepalive,
)
from node.softether.errors import Err
from node.softether.protocol_error import ProtocolError

# (frames, wire hex) -- one table drives encode and decode.
VECTORS = [
    ([b"\x01\x02\x03"], "00000001 00000003 010203"),
    ([b"ab", b"c"], "00000002 00000002 6162 00000001 63"),
    ([b"\xff" * 4], "00000001 00000004 ffffffff"),
]


def _hex(h):
    return bytes.fromhex(h.replace(" ", ""))


def _frames(events):
    return [f for ev in events if isinstance(ev, Frames) for f in ev.frames]


@pytest.mark.parametrize("frames,hexstr", VECTORS)
def test_encode_vectors(frames, hexstr):
    assert encode_frames(frames) == _hex(hexstr)


@pytest.mark.parametrize("frames,hexstr", VECTORS)
def test_decode_vectors_whole(frames, hexstr):
    d = BlockDecoder()
    assert d.feed(_hex(hexstr)) == [Frames(frames)]
    assert d.buffered == 0


@pytest.mark.parametrize("frames,hexstr", VECTORS)
def test_decode_vectors_byte_at_a_time(frames, hexstr):
    d = BlockDecoder()
    got = []
    raw = _hex(hexstr)
    for i in range(len(raw)):
        got += _frames(d.feed(raw[i:i + 1]))
    assert got == frames
    assert d.buffered == 0


def test_keepalive_vector_and_events_keep_stream_order():
    ka = encode_keepalive(b"xyz")
    assert ka == _hex("ffffffff 00000003 78797a")
    raw = encode_frames([b"a"]) + ka + encode_frames([b"b", b"c"]) + encode_keepalive(b"")
    assert BlockDecoder().feed(raw) == [Frames([b"a"]), KeepAlive(3), Frames([b"b", b"c"]), KeepAlive(0)]


def test_partial_burst_frames_are_delivered_early():
    raw = encode_frames([b"one", b"two"])
    d = BlockDecoder()
    assert d.feed(raw[:4 + 4 + 3 + 2]) == [Frames([b"one"])]
    assert d.feed(raw[4 + 4 + 3 + 2:]) == [Frames([b"two"])]


def test_zero_count_and_zero_size_are_skipped():
    raw = _hex("00000000") + _hex("00000003 00000000 00000001 41 00000000") + _hex("00000000")
    assert BlockDecoder().feed(raw) == [Frames([b"A"])]


def test_trailing_partial_item_is_buffered_not_lost():
    d = BlockDecoder()
    raw = encode_frames([b"x" * 10]) + b"\x00\x00\x00\x01\x00\x00"
    assert _frames(d.feed(raw)) == [b"x" * 10]
    assert d.buffered == 2  # the count was consumed; 2 bytes of a size wait
    assert _frames(d.feed(b"\x00\x02hi")) == [b"hi"]


def test_frame_over_1600_dropped_but_stream_continues():
    big = b"\0" * 1601
    raw = struct.pack(">II", 2, len(big)) + big + struct.pack(">I", 2) + b"ok"
    d = BlockDecoder()
    assert d.feed(raw) == [Frames([b"ok"])]
    assert d.dropped_oversize == 1


def test_exactly_1600_and_3200_limits():
    d = BlockDecoder()
    raw = struct.pack(">II", 2, 1600) + b"a" * 1600 + struct.pack(">I", 3200) + b"b" * 3200
    assert _frames(d.feed(raw)) == [b"a" * 1600]
    assert d.dropped_oversize == 1


@pytest.mark.parametrize("raw", [
    struct.pack(">II", 1, 3201),                  # block size over 3200
    struct.pack(">II", 0xFFFFFFFF, 513),          # keep-alive over 512
    struct.pack(">II", 1, 0xFFFFFFFF),
], ids=["block 3201", "keepalive 513", "block 4G"])
def test_oversized_lengths_raise_typed_error(raw):
    d = BlockDecoder()
    with pytest.raises(BlockError) as info:
        d.feed(raw)
    assert isinstance(info.value, ProtocolError)
    assert info.value.code == Err.DISCONNECTED
    with pytest.raises(BlockError):  # no resync: the decoder stays failed
        d.feed(encode_frames([b"x"]))


def test_oversized_size_detected_before_its_body_arrives_byte_at_a_time():
    d = BlockDecoder()
    raw = struct.pack(">II", 1, 5000)
    for b in raw[:-1]:
        assert d.feed(bytes([b])) == []
    with pytest.raises(BlockError):
        d.feed(raw[-1:])


def test_compressed_round_trip_and_wire_format_is_zlib():
    frames = [b"hello" * 50, b"\x00" * 1600]
    raw = encode_frames(frames, compress=True)
    (n, size) = struct.unpack_from(">II", raw)
    assert n == 2 and zlib.decompress(raw[8:8 + size]) == frames[0]
    assert _frames(BlockDecoder(compress=True).feed(raw)) == frames


def test_compressed_bad_or_too_big_blocks_are_dropped():
    bomb = zlib.compress(b"\0" * 1601)
    raw = struct.pack(">II", 3, 5) + b"junk!" + struct.pack(">I", len(bomb)) + bomb
    good = zlib.compress(b"fine")
    raw += struct.pack(">I", len(good)) + good
    d = BlockDecoder(compress=True)
    assert d.feed(raw) == [Frames([b"fine"])]
    assert d.dropped_bad_compress == 2


def test_keepalive_is_not_compressed():
    assert BlockDecoder(compress=True).feed(encode_keepalive(b"\x01" * 7)) == [KeepAlive(7)]


@pytest.mark.parametrize("frames", [[b""], [b"x" * 1601]])
def test_encode_rejects_frames_peer_would_drop(frames):
    with pytest.raises(ValueError):
        encode_frames(frames)


def test_encode_empty_list_and_keepalive_limit():
    assert encode_frames([]) == b""
    assert len(encode_keepalive(b"\0" * 512)) == 520
    with pytest.raises(ValueError):
        encode_keepalive(b"\0" * 513)


_frame = st.binary(min_size=1, max_size=1600)
_item = st.one_of(
    st.lists(_frame, min_size=1, max_size=5).map(lambda fs: ("f", fs)),
    st.binary(max_size=512).map(lambda b: ("k", b)),
)


def _flatten(events):
    out = []
    for ev in events:
        if isinstance(ev, Frames):
            out.extend(("f", f) for f in ev.frames)
        else:
            out.append(("k", ev.size))
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(_item, max_size=6), st.booleans(), st.lists(st.integers(1, 700), max_size=30))
def test_round_trip_any_split(items, compress, cuts):
    raw = b"".join(encode_frames(x, compress) if k == "f" else encode_keepalive(x) for k, x in items)
    expected = []
    for k, x in items:
        if k == "f":
            expected.extend(("f", f) for f in x)
        else:
            expected.append(("k", len(x)))
    d = BlockDecoder(compress=compress)
    got, pos = [], 0
    for c in cuts:
        got += _flatten(d.feed(raw[pos:pos + c]))
        pos += c
    got += _flatten(d.feed(raw[pos:]))
    assert got == expected
    assert d.buffered == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(raw):
    try:
        BlockDecoder().feed(raw)
    except BlockError:
        pass


def test_feed_frames_batches_a_read_and_counts_keepalives():
    d = BlockDecoder()
    data = encode_frames([b"a" * 14, b"b" * 14]) + encode_keepalive(b"x") + encode_frames([b"c" * 14])
    assert d.feed_frames(data) == [b"a" * 14, b"b" * 14, b"c" * 14]
    assert d.keepalives == 1


def test_keepalive_span_is_between_a_fifth_and_half_of_t():
    from node.softether.blocks import keepalive_span_s
    # SoftEther's GenNextKeepAliveSpan: max(r*T/2, T/5)
    assert keepalive_span_s(20_000, 0.0) == 4.0 and keepalive_span_s(20_000, 0.9) == 9.0
    assert keepalive_span_s(20_000, 0.999) == pytest.approx(9.99)
    assert keepalive_span_s(20_000, 0.2) == 4.0  # r*T/2 below T/5


@pytest.mark.parametrize("wrap", [bytearray, memoryview])
def test_frames_are_bytes_whatever_buffer_is_fed(wrap):
    # the switch uses frame slices as dict keys, so a frame is never a bytearray/view
    raw = encode_frames([b"a" * 20, b"b" * 20])
    d = BlockDecoder()
    got = d.feed_frames(wrap(raw[:30])) + d.feed_frames(wrap(raw[30:]))
    assert got == [b"a" * 20, b"b" * 20]
    assert all(type(f) is bytes for f in got)


def test_a_read_ending_mid_item_carries_only_that_item():
    frame = bytes(range(256)) * 5
    raw = encode_frames([frame] * 4)
    d = BlockDecoder()
    assert d.feed_frames(raw[:4 + 1284 + 100]) == [frame]
    assert d.buffered == 100
    assert d.feed_frames(raw[4 + 1284 + 100:]) == [frame] * 3
    assert d.buffered == 0
