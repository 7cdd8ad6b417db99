"""Frames per second through the Virtual Hub switch core and its dispatch.

Scenarios, each for 64- and 1400-byte frames, median of 5 runs:
  switch.forward      known unicast, one frame per call (the core alone)
  switch.flood        broadcast to 7 other ports (the core alone)
  hub.input batch=64  VirtualHub.input with dummy ports (core + grouping +
                      one send_frames call per out port per batch)

Run: python3 bench/switch_forward.py [--frames N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from node.dataplane.virtual_hub import VirtualHub
from node.dataplane.switch import Switch

BCAST = b"\xff" * 6
RUNS = 5


def mac(i: int) -> bytes:
    return bytes((2, 0, 0, 0, 0, i))


def frame(dst: bytes, src: bytes, size: int) -> bytes:
    # an IPv4/ICMP frame, so the IP-learning path runs as it does for real traffic
    ip = bytes((0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, src[5], 10, 0, 0, dst[5]))
    return dst + src + b"\x08\x00" + ip + bytes(size - 34)


class DummyPort:
    def __init__(self, n: int) -> None:
        self.id = n
        self.name = f"port{n}"
        self.frames = 0

    def send_frames(self, frames: list[bytes]) -> None:
        self.frames += len(frames)


def setup_switch(nports: int) -> Switch:
    sw = Switch()
    for i in range(1, nports + 1):
        sw.add_port(i, f"port{i}")
        sw.forward(i, frame(BCAST, mac(i), 64), 0.0)
    return sw


def bench_forward(size: int, n: int, broadcast: bool) -> float:
    sw = setup_switch(8)
    f = frame(BCAST if broadcast else mac(2), mac(1), size)
    fwd = sw.forward
    t0 = time.perf_counter()
    for _ in range(n):
        fwd(1, f, 1.0)
    return n / (time.perf_counter() - t0)


def bench_hub(size: int, n: int, batch: int = 64) -> float:
    clock = iter(range(1 << 62)).__next__  # a cheap monotonic stand-in
    hub = VirtualHub("BENCH", clock=clock)
    ports = [DummyPort(i) for i in range(1, 5)]
    for p in ports:
        hub.attach(p)
        hub.input(p, [frame(BCAST, mac(p.id), 64)])
    frames = [frame(mac(2 + i % 3), mac(1), size) for i in range(batch)]
    t0 = time.perf_counter()
    for _ in range(n // batch):
        hub.input(ports[0], frames)
    return (n // batch) * batch / (time.perf_counter() - t0)


def median_of(fn, *args) -> float:
    return statistics.median(fn(*args) for _ in range(RUNS))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200_000, help="frames per run")
    n = ap.parse_args().frames
    print(f"{'scenario':<28}{'size':>6}{'frames/s (median of 5)':>26}")
    for size in (64, 1400):
        rows = [
            ("switch.forward unicast", median_of(bench_forward, size, n, False)),
            ("switch.forward flood x7", median_of(bench_forward, size, n, True)),
            ("hub.input batch=64, 4 ports", median_of(bench_hub, size, n)),
        ]
        for name, fps in rows:
            print(f"{name:<28}{size:>6}{fps:>26,.0f}")


if __name__ == "__main__":
    main()
