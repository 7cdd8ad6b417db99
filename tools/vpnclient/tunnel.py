"""The client's data plane on one connection, sans-IO (softether-protocol.md §6).

After the welcome the stream carries data bursts and keep-alives
(node/softether/blocks.py). `Tunnel` adds the timing rules both SoftEther
ends apply with T = the welcome's `timeout` (ms):

- keep-alive: sent when its timer expires; the next one is due
  max(r * T/2, T/5) later, r uniform in [0, 1) (SoftEther's
  GenNextKeepAliveSpan: `max(rand() % (T/2), T/5)`, 4..10 s for T = 20 s).
  Sending data re-arms the timer, as SoftEther's send path does (the span
  is drawn once per keep-alive, not per burst: the packet path stays cheap).
- session timeout: T of silence (no byte at all, keep-alives included)
  ends the session with ERR_SESSION_TIMEOUT (`SessionMain`); the caller
  then reconnects from scratch.

`now` is monotonic seconds, passed in; randomness is injected (`rand` for
the span, `rand_bytes` for the filler, SoftEther sends rand() % 512 random
bytes). The caller re-arms one timer at `next_deadline()` after every call.
"""

from __future__ import annotations

import os
import random
from typing import Callable

from node.softether.blocks import (
    MAX_KEEPALIVE_SIZE, BlockDecoder, SessionTimeout, encode_frames, encode_keepalive, keepalive_span_s,
)
from node.softether.pack import RandBytes



class Tunnel:
    """Blocks, keep-alives and the receive timeout of one data connection.

    Counters (frames/bytes each way, keep-alives) are public attributes for
    status reports; `receive_data` raises BlockError for a broken stream.
    """

    __slots__ = ("timeout_s", "_timeout_ms", "_decoder", "_compress", "_rand", "_rand_bytes",
                 "_last_rx", "_last_tx", "_span_s", "frames_in", "frames_out", "bytes_in",
                 "bytes_out", "bursts_out", "keepalives_out")

    def __init__(self, *, timeout_ms: int, now: float, compress: bool = False,
                 rand: Callable[[], float] = random.random, rand_bytes: RandBytes = os.urandom) -> None:
        if timeout_ms <= 0:
            raise ValueError("timeout must be positive")
        self._timeout_ms = timeout_ms
        self.timeout_s = timeout_ms / 1000.0
        self._decoder = BlockDecoder(compress)
        self._compress = compress
        self._rand = rand
        self._rand_bytes = rand_bytes
        self._last_rx = self._last_tx = now
        self._span_s = keepalive_span_s(timeout_ms, rand())
        self.frames_in = self.frames_out = self.bytes_in = self.bytes_out = self.bursts_out = 0
        self.keepalives_out = 0

    def receive_data(self, data: bytes, now: float) -> list[bytes]:
        """Stream bytes -> the Ethernet frames they completed (maybe none)."""
        self._last_rx = now
        self.bytes_in += len(data)
        out = self._decoder.feed_frames(data)
        self.frames_in += len(out)
        return out

    @property
    def keepalives_in(self) -> int:
        return self._decoder.keepalives

    def send_frames(self, frames: list[bytes], now: float) -> bytes:
        """One burst carrying `frames` (b"" for none); re-arms the keep-alive."""
        if not frames:
            return b""
        data = encode_frames(frames, self._compress)
        self.frames_out += len(frames)
        self.bursts_out += 1
        self.bytes_out += len(data)
        self._last_tx = now
        return data

    def handle_timer(self, now: float) -> bytes:
        """A keep-alive if one is due (else b""); SessionTimeout after T of silence."""
        silent = now - self._last_rx
        if silent >= self.timeout_s:
            raise SessionTimeout(silent)
        if now < self._last_tx + self._span_s:
            return b""
        filler = self._rand_bytes(int(self._rand() * MAX_KEEPALIVE_SIZE))
        self._last_tx = now
        self._span_s = keepalive_span_s(self._timeout_ms, self._rand())
        self.keepalives_out += 1
        data = encode_keepalive(filler)
        self.bytes_out += len(data)
        return data

    def next_deadline(self) -> float:
        """When handle_timer() must run next (monotonic seconds)."""
        return min(self._last_tx + self._span_s, self._last_rx + self.timeout_s)
