import pytest

from node.softether.blocks import BlockDecoder, BlockError, Frames, encode_frames, encode_keepalive
from node.softether.errors import Err
from node.softether.blocks import MAX_PACKET_SIZE, SessionTimeout, keepalive_span_s
from tools.vpnclient.tunnel import Tunnel

FRAME = bytes(range(60))


class FixedRandom:
    """Always draws `r` in [0, 1): spans and filler lengths are known."""

    def __init__(self, r: float) -> None:
        self.r = r

    def random(self) -> float:
        return self.r

    def randrange(self, n: int) -> int:
        return int(self.r * n)


def tunnel(now=100.0, r=0.0, timeout_ms=20_000):
    return Tunnel(timeout_ms=timeout_ms, now=now, rand=FixedRandom(r), rand_bytes=lambda n: b"\xaa" * n)


def test_keepalive_is_sent_when_due_and_rearmed():
    t = tunnel(r=0.5)  # span 5 s, filler 256 bytes
    assert t.next_deadline() == 105.0
    assert t.handle_timer(104.9) == b""
    data = t.handle_timer(105.0)
    assert data == encode_keepalive(b"\xaa" * 256)
    assert t.keepalives_sent == 1 and t.next_deadline() == 110.0


def test_sending_data_rearms_the_keepalive():
    t = tunnel(r=0.5)
    out = t.send_frames([FRAME, FRAME], now=104.0)
    assert out == encode_frames([FRAME, FRAME])
    assert t.next_deadline() == 109.0 and t.handle_timer(105.0) == b""
    assert (t.sent_frames, t.bursts_out, t.sent_bytes) == (2, 1, len(out))
    assert t.send_frames([], now=104.5) == b"" and t.next_deadline() == 109.0


def test_each_send_draws_a_new_keepalive_span():
    # as SoftEther's Connection.c after each data burst (and DataChannel on the server)
    t = tunnel(r=0.5)
    t._rand.r = 0.9
    t.send_frames([FRAME], now=104.0)
    assert t.next_deadline() == 104.0 + keepalive_span_s(20_000, 0.9)


def test_every_frame_of_a_call_is_sent_at_once_and_unsendable_ones_are_counted():
    t = tunnel()
    frames = [FRAME] * 3000  # more than the server's per-session queue: the client keeps no queue
    out = t.send_frames(frames + [b"", b"x" * (MAX_PACKET_SIZE + 1)], now=101.0)
    assert out == encode_frames(frames)
    assert (t.sent_frames, t.bursts_out, t.dropped_frames, t.queued) == (3000, 1, 2, 0)
    assert t.send_frames([b""], now=101.0) == b"" and t.bursts_out == 1


def test_silence_of_t_times_out_and_traffic_postpones_it():
    t = tunnel(r=0.999)  # keep-alives late, so the timeout is the deadline
    t.receive_data(encode_keepalive(b""), now=110.0)
    assert t.next_deadline() == pytest.approx(100.0 + keepalive_span_s(20_000, 0.999))
    t.handle_timer(129.9)  # 19.9 s of silence is fine (a keep-alive goes out)
    with pytest.raises(SessionTimeout) as e:
        t.handle_timer(130.0)
    assert e.value.code == Err.SESSION_TIMEOUT


def test_received_frames_and_keepalives_are_counted_in_any_split():
    stream = encode_frames([FRAME, FRAME[:20]]) + encode_keepalive(b"k" * 7) + encode_frames([FRAME])
    t = tunnel()
    got = []
    for i in range(len(stream)):
        got += t.receive_data(stream[i:i + 1], now=101.0)
    assert got == [FRAME, FRAME[:20], FRAME]
    assert (t.recv_frames, t.keepalives_received, t.recv_bytes) == (3, 1, len(stream))


def test_a_broken_stream_raises_block_error():
    t = tunnel()
    with pytest.raises(BlockError):
        t.receive_data(b"\x00\x00\x00\x01\x00\x01\x00\x00", now=101.0)  # block of 65536 bytes


def test_compressed_session_round_trips():
    t = Tunnel(timeout_ms=20_000, now=0.0, compress=True)
    data = t.send_frames([FRAME], now=1.0)
    assert BlockDecoder(compress=True).feed(data) == [Frames([FRAME])]
    assert t.receive_data(data, now=1.0) == [FRAME]


def test_zero_timeout_is_refused():
    with pytest.raises(ValueError):
        Tunnel(timeout_ms=0, now=0.0)
