"""The client's data plane on one connection, sans-IO (softether-protocol.md §6).

After the welcome the stream carries data bursts and keep-alives
(node/softether/blocks.py). Both SoftEther ends apply the same rules to
it, with T = the welcome's `timeout` (ms), so the client runs the server's
core, `DataChannel` (node/dataplane/session.py: the numbers and SoftEther's
functions are in its prose): the block decoder, a keep-alive when nothing
was sent for max(r * T/2, T/5) (a new span drawn after every send, as
SoftEther's Connection.c does after each data burst), and SessionTimeout
after T of silence, which makes the caller reconnect from scratch.

`Tunnel` only adds the client's way of driving it: a burst is written the
moment its frames arrive (`send_frames`; so nothing ever stays queued and
the server's queue limit does not apply), one timer calls `handle_timer` at
`next_deadline()`, and the counter names the client's status reports use.
A frame SoftEther cannot carry (empty, over 1600 bytes) is dropped and
counted in `dropped_frames`.
"""

from __future__ import annotations

import os
import random
import sys

from node.dataplane.session import DataChannel
from node.softether.pack import RandBytes


class Tunnel(DataChannel):
    """Blocks, keep-alives and the receive timeout of one data connection.

    `receive_data` raises BlockError for a broken stream."""

    __slots__ = ("bursts_out",)

    def __init__(self, *, timeout_ms: int, now: float, compress: bool = False,
                 rand: random.Random | None = None, rand_bytes: RandBytes = os.urandom) -> None:
        super().__init__(now=now, timeout_ms=timeout_ms, compress=compress, max_queued_frames=sys.maxsize,
                         rand=rand, rand_bytes=rand_bytes)
        self.bursts_out = 0

    def send_frames(self, frames: list[bytes], now: float) -> bytes:
        """One burst carrying `frames` (and a keep-alive if one is due; b""
        for neither); re-arms the keep-alive."""
        before = self.sent_frames
        self.queue_frames(frames)
        out = self.data_to_send(now)
        self.bursts_out += self.sent_frames != before
        return out

    def handle_timer(self, now: float) -> bytes:
        """A keep-alive if one is due (else b""); SessionTimeout after T of silence."""
        self.check_timeout(now)
        return self.data_to_send(now)
