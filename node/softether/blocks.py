"""The data-plane block framer of one SE-VPN TCP connection, sans-IO.

After the welcome, each TCP (TLS) stream carries (softether-protocol.md §6.1):

    data burst := u32 N (1..0xFFFFFFFE), N x (u32 size, size bytes)
    keep-alive := u32 0xFFFFFFFF, u32 size (0..512), size filler bytes
    N = 0 is a no-op.

Each block is one Ethernet frame. SoftEther's receiver (`ConnectionReceive`
in Cedar/Connection.c) parses this as a strict state machine with no resync,
and so does `BlockDecoder`:
- a block size over 3200 (MAX_PACKET_SIZE * 2) means the stream is broken:
  SoftEther disconnects that TCP connection, we raise `BlockError`;
- a keep-alive filler over 512 bytes (MAX_KEEPALIVE_SIZE): the same;
- size 0 is skipped; a frame over 1600 bytes (MAX_PACKET_SIZE) is dropped;
- with use_compress every data block (not keep-alives) is zlib-format
  compressed; SoftEther inflates into a 1600-byte buffer and a block that
  does not inflate (or inflates larger) becomes an empty frame, so we drop it.

The decoder never waits for a burst to end: the frames completed by each
`feed()` are returned at once (the rest of a burst may still be on the way),
which keeps latency at one TCP read. State is the buffer of one unfinished
item (at most 4 + 3200 bytes), the blocks left in the current burst and the
drop counters. Speed matters here: parsing is struct.unpack_from straight
over the caller's bytes, one bytes slice per frame, no per-byte loop. A read
that ends inside an item leaves that item's bytes carried; the next read
completes it on a copy of at most one item (not of the whole read) and is
then parsed in place (bench/block_codec.py: ~2.3 M frames/s of 1400 bytes
on one core of the dev machine, whole bursts or 16 KiB reads alike).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from node.softether.errors import Err
from node.softether.protocol_error import ProtocolError

MAX_PACKET_SIZE = 1600
MAX_BLOCK_SIZE = MAX_PACKET_SIZE * 2
MAX_KEEPALIVE_SIZE = 512
KEEP_ALIVE_MAGIC = 0xFFFFFFFF

_U32 = struct.Struct(">I")
_unpack_u32 = _U32.unpack_from
_pack_u32 = _U32.pack

_COUNT, _BLOCKS, _KEEPALIVE = 0, 1, 2
_MAX_ITEM = 4 + MAX_BLOCK_SIZE  # the longest item: a size word and the largest block


class BlockError(ProtocolError):
    """The data stream is broken (oversized block or keep-alive).

    Raised by `BlockDecoder.feed`. SoftEther disconnects that TCP connection;
    the edge must close it (the session may live on over its other sockets).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, Err.DISCONNECTED)


class SessionTimeout(ProtocolError):
    """Nothing at all (not even a keep-alive) arrived for the welcome's
    timeout T. Both ends apply it (SoftEther's ConnectionReceive/SessionMain):
    the edge closes the connection, a client reconnects from scratch."""

    def __init__(self, silent_s: float) -> None:
        super().__init__(f"nothing received for {silent_s:.1f} s", Err.SESSION_TIMEOUT)


def keepalive_span_s(timeout_ms: int, r: float) -> float:
    """Seconds until the next keep-alive, for the welcome's timeout T (ms) and
    r uniform in [0, 1): max(r * T/2, T/5), SoftEther's GenNextKeepAliveSpan
    (4..10 s for T = 20 s). Both ends use it; sending data re-arms it."""
    return max(r * timeout_ms / 2, timeout_ms / 5) / 1000.0


@dataclass(frozen=True, slots=True)
class Frames:
    """Ethernet frames received, in stream order."""

    frames: list[bytes]


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """A keep-alive arrived (it counts as traffic for the receive timeout)."""

    size: int


BlockEvent = Frames | KeepAlive


class BlockDecoder:
    """Feed it the stream's bytes in any split; get `Frames`/`KeepAlive` events.

    After a `BlockError` the decoder is unusable (the stream has no resync).
    Counters `dropped_oversize` and `dropped_bad_compress` count frames
    dropped by the rules above; size-0 blocks are skipped without counting.
    """

    __slots__ = ("_buf", "_state", "_left", "_compress", "_broken",
                 "dropped_oversize", "dropped_bad_compress", "keepalives")

    def __init__(self, compress: bool = False) -> None:
        self._buf = b""  # the unfinished item (at most _MAX_ITEM bytes)
        self._state = _COUNT
        self._left = 0  # blocks still expected in the current burst
        self._compress = compress
        self._broken = False
        self.dropped_oversize = 0
        self.dropped_bad_compress = 0
        self.keepalives = 0  # counted by feed_frames

    @property
    def buffered(self) -> int:
        """Bytes held for an unfinished item (for tests and diagnostics)."""
        return len(self._buf)

    def feed_frames(self, data: bytes) -> list[bytes]:
        """Like `feed`, but the frames `data` completed as one list (the
        batch both ends hand on), keep-alives only counted in `keepalives`."""
        events = self.feed(data)
        if len(events) == 1 and type(events[0]) is Frames:
            return events[0].frames
        frames: list[bytes] = []
        for ev in events:
            if type(ev) is Frames:
                frames += ev.frames
            else:
                self.keepalives += 1
        return frames

    def feed(self, data: bytes) -> list[BlockEvent]:
        """Consume `data`; return the events it completed (maybe none).

        Raises BlockError for an oversized block or keep-alive.
        """
        if self._broken:
            raise BlockError("block stream already failed")
        if type(data) is not bytes:
            data = bytes(data)  # frames are slices of it and must be bytes
        events: list[BlockEvent] = []
        frames: list[bytes] = []
        pos = 0
        try:
            carry = self._buf
            if carry:
                # Finish the carried item on a small copy: the carry plus at
                # most one item's worth of `data`, never the whole read.
                n = len(carry)
                head = carry + data[:_MAX_ITEM - n]
                pos, frames = self._scan(head, 0, events, frames)
                if pos < n:  # still unfinished: all of `data` is in `head`
                    self._buf = head[pos:]
                    return events
                pos -= n  # the rest of `head` is `data` from here on
            pos, frames = self._scan(data, pos, events, frames)
        except BlockError:
            self._broken = True
            raise
        if frames:
            events.append(Frames(frames))
        self._buf = data[pos:] if pos < len(data) else b""
        return events

    def _scan(self, buf: bytes, pos: int, events: list[BlockEvent],
              frames: list[bytes]) -> tuple[int, list[bytes]]:
        """Parse the complete items of `buf` from `pos`; returns where the
        first unfinished item starts and the frames list now being filled
        (a keep-alive closes the previous one into `events`)."""
        end = len(buf)
        state = self._state
        left = self._left
        compress = self._compress
        append = frames.append
        while True:
            if state == _BLOCKS:
                # The hot loop: one size word + body per frame, one slice copy.
                while left and end - pos >= 4:
                    (size,) = _unpack_u32(buf, pos)
                    if size > MAX_BLOCK_SIZE:
                        raise BlockError(f"block size {size} > {MAX_BLOCK_SIZE}")
                    stop = pos + 4 + size
                    if stop > end:
                        break
                    if size:
                        if compress:
                            frame = self._inflate(buf[pos + 4:stop])
                            if frame:
                                append(frame)
                        elif size <= MAX_PACKET_SIZE:
                            append(buf[pos + 4:stop])
                        else:
                            self.dropped_oversize += 1
                    pos = stop
                    left -= 1
                if left:
                    break
                state = _COUNT
            elif state == _COUNT:
                if end - pos < 4:
                    break
                (count,) = _unpack_u32(buf, pos)
                pos += 4
                if count == KEEP_ALIVE_MAGIC:
                    state = _KEEPALIVE
                elif count:
                    state, left = _BLOCKS, count
            else:  # _KEEPALIVE: u32 size then filler, consumed together
                if end - pos < 4:
                    break
                (size,) = _unpack_u32(buf, pos)
                if size > MAX_KEEPALIVE_SIZE:
                    raise BlockError(f"keep-alive size {size} > {MAX_KEEPALIVE_SIZE}")
                if end - pos - 4 < size:
                    break
                pos += 4 + size
                state = _COUNT
                if frames:
                    events.append(Frames(frames))
                    frames = []
                    append = frames.append
                events.append(KeepAlive(size))
        self._state = state
        self._left = left
        return pos, frames

    def _inflate(self, block: bytes) -> bytes:
        # Like SoftEther's Uncompress into a MAX_PACKET_SIZE buffer: too big
        # or corrupt gives an empty frame, which is then dropped.
        d = zlib.decompressobj()
        try:
            frame = d.decompress(block, MAX_PACKET_SIZE + 1)
        except zlib.error:
            self.dropped_bad_compress += 1
            return b""
        if len(frame) > MAX_PACKET_SIZE or not d.eof:
            self.dropped_bad_compress += 1
            return b""
        return frame


def encode_frames(frames: list[bytes], compress: bool = False) -> bytes:
    """One data burst carrying `frames` (empty list -> b"", nothing to send).

    ValueError for an empty frame or one over 1600 bytes: the peer would drop
    it, so sending one is our bug. With `compress` each frame is zlib'd.
    """
    if not frames:
        return b""
    parts = [_pack_u32(len(frames))]
    append = parts.append
    for frame in frames:
        n = len(frame)
        if not 0 < n <= MAX_PACKET_SIZE:
            raise ValueError(f"frame of {n} bytes cannot be sent")
        if compress:
            frame = zlib.compress(frame)
            n = len(frame)
        append(_pack_u32(n))
        append(frame)
    return b"".join(parts)


def encode_keepalive(filler: bytes) -> bytes:
    """A keep-alive with `filler` (0..512 bytes; SoftEther sends rand()%512
    random bytes). ValueError if longer."""
    if len(filler) > MAX_KEEPALIVE_SIZE:
        raise ValueError(f"keep-alive filler of {len(filler)} bytes > {MAX_KEEPALIVE_SIZE}")
    return _pack_u32(KEEP_ALIVE_MAGIC) + _pack_u32(len(filler)) + bytes(filler)
