"""Frames per second of the SE-VPN block codec (node/softether/blocks.py).

1400-byte frames in bursts of 16, the shape of a busy tunnel. Decode is fed
the way a socket delivers it: whole bursts, and the same bytes in 16 KiB
reads that split bursts, through `feed_frames`, the call both ends make on
every read (node/dataplane/session.py, tools/vpnclient/tunnel.py). Prints
the median of 5 runs of each.

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
    stream = burst * BURSTS
    reads = [stream[i:i + 16384] for i in range(0, len(stream), 16384)]

    def encode() -> int:
        for _ in range(BURSTS):
            encode_frames(frames)
        return BURSTS * BURST

    def decode_bursts() -> int:
        d = BlockDecoder()
        n = 0
        for _ in range(BURSTS):
            n += len(d.feed_frames(burst))
        return n

    def decode_reads() -> int:
        d = BlockDecoder()
        n = 0
        for chunk in reads:
            n += len(d.feed_frames(chunk))
        return n

    print(f"frame {FRAME_SIZE} B, burst {BURST}, median of {RUNS} runs")
    print(f"encode               {_rate(encode):>12,.0f} frames/s")
    print(f"decode whole bursts  {_rate(decode_bursts):>12,.0f} frames/s")
    print(f"decode 16 KiB reads  {_rate(decode_reads):>12,.0f} frames/s")


if __name__ == "__main__":
    main()
