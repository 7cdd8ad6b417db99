"""VpnSession and its sans-IO DataChannel: batching both ways, the bounded
queue, keep-alives and the receive timeout (time moved by hand), and the
asyncio edge with an in-memory reader and a fake writer."""

from __future__ import annotations

import asyncio
import random
import struct
import time

import pytest

from node.dataplane.hubs import RunningHub
import node.dataplane.session as session_module
from node.dataplane.session import DataChannel, VpnSession
from node.softether.blocks import (
    MAX_PACKET_SIZE, BlockDecoder, BlockError, Frames, KeepAlive, SessionTimeout, encode_frames, encode_keepalive,
    keepalive_span_s,
)
from tests.unit.dataplane.fakes import BCAST, mac

T_MS = 20_000


def frame(dst: bytes, src: bytes, tag: bytes = b"") -> bytes:
    return dst + src + b"\x88\xb5" + tag.ljust(46, b"\0")


def channel(now: float = 100.0, **kw) -> DataChannel:
    return DataChannel(now=now, timeout_ms=T_MS, rand=random.Random(7), rand_bytes=lambda n: b"k" * n, **kw)


def decode(data: bytes) -> list:
    return BlockDecoder().feed(data)


# ---- DataChannel: receive ---------------------------------------------------------

def test_all_frames_of_one_read_come_back_as_one_batch_even_across_a_keepalive():
    ch = channel()
    frames = [frame(BCAST, mac(1), b"%d" % i) for i in range(4)]
    data = encode_frames(frames[:2]) + encode_keepalive(b"x" * 10) + encode_frames(frames[2:])
    assert ch.receive_data(data, 101.0) == frames
    assert ch.keepalives_received == 1 and ch.recv_frames == 4 and ch.recv_bytes == len(data)


def test_frames_split_at_any_byte_arrive_complete_and_in_order():
    ch = channel()
    frames = [frame(BCAST, mac(1), b"%d" % i) for i in range(3)]
    data = encode_frames(frames)
    got = []
    for i in range(len(data)):
        got += ch.receive_data(data[i:i + 1], 101.0)
    assert got == frames


@pytest.mark.parametrize("bad", [struct.pack(">II", 1, 3201), struct.pack(">II", 0xFFFFFFFF, 513)])
def test_a_broken_stream_raises_block_error(bad):
    with pytest.raises(BlockError):
        channel().receive_data(bad, 101.0)


def test_silence_for_the_timeout_raises_and_any_bytes_count_as_life():
    ch = channel(now=100.0)
    ch.check_timeout(119.9)
    ch.receive_data(encode_keepalive(b""), 119.9)
    ch.check_timeout(139.8)
    with pytest.raises(SessionTimeout) as err:
        ch.check_timeout(139.9)
    assert err.value.code == 13  # ERR_SESSION_TIMEOUT


# ---- DataChannel: send --------------------------------------------------------------

def test_everything_queued_goes_out_as_one_burst():
    ch = channel()
    batches = [[frame(mac(2), mac(1), b"a")], [frame(mac(2), mac(1), b"b"), frame(mac(2), mac(1), b"c")]]
    assert ch.queue_frames(batches[0]) is True      # empty -> non-empty: wake the writer
    assert ch.queue_frames(batches[1]) is False     # already pending
    out = ch.data_to_send(101.0)
    events = decode(out)
    assert events == [Frames(batches[0] + batches[1])]
    assert out[:4] == struct.pack(">I", 3)           # one burst header for all three
    assert ch.sent_frames == 3 and ch.sent_bytes == len(out) and ch.queued == 0
    assert ch.data_to_send(101.0) == b""


def test_the_queue_is_bounded_and_drops_are_counted():
    ch = channel(max_queued_frames=3)
    ch.queue_frames([frame(mac(2), mac(1), b"%d" % i) for i in range(2)])
    ch.queue_frames([frame(mac(2), mac(1), b"x%d" % i) for i in range(4)])
    assert ch.queued == 3 and ch.dropped_frames == 3
    ch.queue_frames([frame(mac(2), mac(1), b"late")])
    assert ch.dropped_frames == ch.dropped_queue_full == 4 and ch.dropped_oversize == 0
    assert len(decode(ch.data_to_send(101.0))[0].frames) == 3


def test_frames_the_protocol_cannot_carry_are_dropped_not_fatal():
    ch = channel()
    ok = frame(mac(2), mac(1), b"ok")
    ch.queue_frames([b"", ok, b"j" * (MAX_PACKET_SIZE + 1)])
    assert decode(ch.data_to_send(101.0)) == [Frames([ok])]
    assert ch.dropped_frames == ch.dropped_oversize == 2 and ch.dropped_queue_full == 0


def test_compressed_bursts_decode_with_a_compressing_decoder():
    ch = channel(compress=True)
    frames = [frame(BCAST, mac(1), b"z" * 40)]
    ch.queue_frames(frames)
    assert BlockDecoder(compress=True).feed(ch.data_to_send(101.0)) == [Frames(frames)]


def test_keepalives_come_every_fifth_to_half_of_the_timeout_and_data_rearms_them():
    ch = channel(now=0.0)
    now, sent_at = 0.0, []
    while now < 200.0:
        deadline = ch.next_deadline()
        assert deadline > now
        now = deadline
        ch.receive_data(encode_keepalive(b""), now)   # the client stays alive
        for ev in decode(ch.data_to_send(now)):
            assert isinstance(ev, KeepAlive) and ev.size < 512
            sent_at.append(now)
    gaps = [b - a for a, b in zip(sent_at, sent_at[1:])]
    assert gaps and all(T_MS / 5 / 1000 - 1e-9 <= g <= T_MS / 2 / 1000 + 1e-9 for g in gaps)  # float sums
    # data re-arms the timer: right after a burst no keep-alive is due
    ch.queue_frames([frame(BCAST, mac(1))])
    ch.data_to_send(now)
    assert ch.next_deadline() >= now + T_MS / 5 / 1000



def test_the_keepalive_span_uses_the_welcome_timeout_exactly():
    # 1001 ms does not survive a ms -> s -> ms round trip (1000.9999... -> 1000)
    ch = DataChannel(now=0.0, timeout_ms=1001, rand=random.Random(7))
    assert ch.next_deadline() == keepalive_span_s(1001, random.Random(7).random())


# ---- VpnSession (asyncio edge) ----------------------------------------------------------

class FakeTransport:
    def __init__(self) -> None:
        self.closing = False
        self.aborted = False
        self.buffered = 0

    def abort(self) -> None:
        self.aborted = self.closing = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing


class FakeWriter:
    """Records every write(); close() ends the reader too, as a socket does."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.writes: list[bytes] = []
        self.transport = FakeTransport()

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    async def drain(self) -> None:
        self.transport.buffered = 0

    def close(self) -> None:
        if not self.transport.closing:
            self.transport.closing = True
            self.reader.feed_eof()

    async def wait_closed(self) -> None:
        return None

    def get_extra_info(self, name: str, default=None):
        return default


class SpyPort:
    """Another hub port: records the batches the hub hands it."""

    def __init__(self, name: str = "SID-SPY-9") -> None:
        self.id = ("spy", name)
        self.name = name
        self.batches: list[list[bytes]] = []

    def send_frames(self, frames: list[bytes]) -> None:
        self.batches.append(list(frames))


async def started(timeout_ms: int = T_MS) -> tuple[RunningHub, VpnSession, asyncio.StreamReader,
                                                     FakeWriter, SpyPort, asyncio.Task]:
    instance = RunningHub("HUB")
    spy = SpyPort()
    instance.hub.attach(spy)
    reader = asyncio.StreamReader()
    writer = FakeWriter(reader)
    session = VpnSession(hub=instance.hub, name=instance.next_session_name("alice"), username="alice",
                         reader=reader, writer=writer, client_ip="127.0.0.7", client_port=4000,  # type: ignore[arg-type]
                         session_key=bytes(20), timeout_ms=timeout_ms)
    instance.add_session(session)
    task = asyncio.create_task(session.run())
    await asyncio.sleep(0)
    return instance, session, reader, writer, spy, task


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_one_read_is_one_hub_batch_and_queued_frames_are_one_write():
    async def main():
        instance, session, reader, writer, spy, task = await started()
        frames = [frame(BCAST, mac(1), b"%d" % i) for i in range(5)]
        reader.feed_data(encode_frames(frames[:3]) + encode_frames(frames[3:]))
        await settle()
        assert spy.batches == [frames]
        # three hub batches before the writer runs: one burst on the socket
        writes_before = len(writer.writes)
        for i in range(3):
            instance.hub.input(spy, [frame(mac(1), mac(9), b"to-alice-%d" % i)])
        await settle()
        new = writer.writes[writes_before:]
        assert len(new) == 1 and len(decode(new[0])[0].frames) == 3
        assert session.total_send_bytes == sum(map(len, writer.writes))
        assert session.total_recv_bytes > 0 and session.tcp_connections == 1
        await session.close("test over")
        await task
        assert session.tcp_connections == 0 and "SID-ALICE-1" not in instance.sessions

    asyncio.run(main())


def test_last_comm_time_is_the_wall_time_of_the_last_bytes_received():
    async def main():
        instance, session, reader, writer, spy, task = await started()
        assert session.last_comm_time == session.created_time
        # the loop's clock has moved on since the session was made (a condition, not a sleep)
        loop = asyncio.get_running_loop()
        made = loop.time()
        for _ in range(1000):
            if loop.time() > made:
                break
            await asyncio.sleep(0.001)
        wall_before = time.time()
        reader.feed_data(encode_keepalive(b""))
        await settle()
        # wall clock, not loop time; the bound allows for the two clocks' drift over the test
        assert session.created_time < session.last_comm_time
        assert abs(session.last_comm_time - wall_before) < 5.0
        await session.close("test over")
        await task

    asyncio.run(main())


def test_a_broken_block_stream_closes_only_that_session():
    async def main():
        instance, session, reader, writer, spy, task = await started()
        reader.feed_data(struct.pack(">II", 1, 9999))
        await asyncio.wait_for(task, 5)
        assert session.close_reason.startswith("protocol error")
        assert session.name not in instance.sessions and writer.transport.closing
        assert spy in instance.hub.ports   # the hub and its other ports go on
        instance.hub.input(spy, [frame(BCAST, mac(9))])  # nothing is sent to a closed session

    asyncio.run(main())


def test_a_silent_client_is_closed_after_the_timeout():
    async def main():
        instance, session, reader, writer, spy, task = await started(timeout_ms=500)
        await asyncio.wait_for(task, 5)
        assert session.close_reason.startswith("timed out")
    asyncio.run(main())


def test_the_edge_sends_the_keepalives_the_channel_schedules():
    # That keep-alives fall due before the timeout is the channel's (proven with
    # time moved by hand above); here the edge must write one when it falls due.
    # The wait is a condition with a wide deadline, and the client keeps
    # talking, so a stalled machine delays the keep-alive but cannot turn the
    # test into a timeout.
    async def main():
        instance, session, reader, writer, spy, task = await started(timeout_ms=1000)

        def keepalive_written() -> bool:
            return any(isinstance(ev, KeepAlive) for w in writer.writes for ev in decode(w))

        for _ in range(1000):  # <= 10 s
            if keepalive_written() or task.done():
                break
            reader.feed_data(encode_keepalive(b""))
            await asyncio.sleep(0.01)
        assert keepalive_written() and not task.done()
        await session.close("test over")
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_close_is_idempotent_and_works_from_the_data_plane():
    async def main():
        instance, session, reader, writer, spy, task = await started()
        closing = instance.disconnect(session, "the Virtual Hub was stopped")
        await asyncio.sleep(0)   # the disconnect task starts closing first
        await session.close("again")
        await asyncio.wait_for(asyncio.gather(closing, task), 5)
        assert session.close_reason == "the Virtual Hub was stopped"

    asyncio.run(main())


def test_cancelling_the_connection_task_closes_the_session():
    async def main():
        instance, session, reader, writer, spy, task = await started()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert session.closed and session.name not in instance.sessions

    asyncio.run(main())


def test_client_eof_ends_the_session():
    async def main():
        instance, session, reader, writer, spy, task = await started()
        reader.feed_eof()
        await asyncio.wait_for(task, 5)
        assert session.close_reason == "the client disconnected"

    asyncio.run(main())


def test_a_bug_on_the_packet_path_ends_the_session_instead_of_leaving_it_half_alive():
    async def main():
        instance, session, reader, writer, spy, task = await started()

        def broken(port, frames):
            raise RuntimeError("switch bug")
        instance.hub.input = broken  # type: ignore[method-assign]
        reader.feed_data(encode_frames([frame(BCAST, mac(1))]))
        await asyncio.wait_for(task, 5)
        assert session.close_reason.startswith("internal error") and writer.transport.closing

    asyncio.run(main())


def test_a_socket_that_does_not_finish_closing_is_aborted(monkeypatch):
    monkeypatch.setattr(session_module, "CLOSE_WAIT_S", 0.05)

    async def main():
        instance, session, reader, writer, spy, task = await started()
        never = asyncio.get_running_loop().create_future()   # a peer that never reads its close

        async def stuck() -> None:
            await never
        writer.wait_closed = stuck  # type: ignore[method-assign]
        await asyncio.wait_for(session.close("admin"), 5)
        await asyncio.wait_for(task, 5)
        assert writer.transport.aborted and session.name not in instance.sessions

    asyncio.run(main())
