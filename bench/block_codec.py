"""Frames per second of the SE-VPN block codec (node/softether/blocks.py).

1400-byte frames in bursts of 16, the shape of a busy tunnel. Decode is fed
the way a socket delivers it: whole bursts, and the same bytes in 16, 64 and
256 KiB reads that split bursts (the session reads 256 KiB,
node/dataplane/session.py READ_CHUNK), through `feed_frames`, the call both
ends make on every read (node/dataplane/session.py, tools/vpnclient/tunnel.py).
Each read is a fresh bytes object copied (in the timed loop) from a small
cache-hot buffer, as recv() copies from the socket: pre-sliced reads of the
90 MB stream would be cold in cache. Prints the median of 5 runs of each.

    python3 bench/block_codec.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from node.softether.blocks import BlockDecoder, encode_frames  # noqa: E402

FRAME_SIZE = 1400
BURST = 16
BURSTS = 4000
RUNS = 5


def _rate(fn) -> float:
    rates = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        frames = fn()
        rates.append(frames / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    frames = [os.urandom(FRAME_SIZE) for _ in range(BURST)]
    burst = encode_frames(frames)

    def encode() -> int:
        for _ in range(BURSTS):
            encode_frames(frames)
        return BURSTS * BURST

    def decode_reads(size: int):
        # The stream is `burst` repeated, so the read at stream offset `pos`
        # equals ring[pos % len(burst):][:size]; slicing bytes copies.
        ring = burst * (size // len(burst) + 2)
        total = len(burst) * BURSTS

        def run() -> int:
            d = BlockDecoder()
            n = 0
            for pos in range(0, total, size):
                start = pos % len(burst)
                n += len(d.feed_frames(ring[start:start + min(size, total - pos)]))
            if n != BURSTS * BURST:
                raise AssertionError(f"{size} B reads decoded {n} frames, not {BURSTS * BURST}")
            return n
        return run

    print(f"frame {FRAME_SIZE} B, burst {BURST}, median of {RUNS} runs")
    print(f"encode               {_rate(encode):>12,.0f} frames/s")
    print(f"decode whole bursts  {_rate(decode_reads(len(burst))):>12,.0f} frames/s")
    for kib in (16, 64, 256):
        print(f"decode {kib:>3} KiB reads {_rate(decode_reads(kib * 1024)):>12,.0f} frames/s")


if __name__ == "__main__":
    main()
