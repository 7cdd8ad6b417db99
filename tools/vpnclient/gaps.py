"""How long a VPN path was down: a steady ping stream and its gaps.

Drills kill members and measure what a user would see. `GapTracker` is the
sans-IO core: probes are numbered and sent every `interval_s`; the caller
reports each send and each answer with `now`. A gap is the time between
the sends of two consecutive *answered* probes when it exceeds
`slack * interval_s` (default 1.5: one late answer is not an outage); its
length is that difference, so a gap measures "from the last probe that got
through to the first one that got through again", at a resolution of one
interval. Answers that arrive twice or for unknown probes are ignored.

`ping_stream` is the asyncio edge over a UserspaceClient (or anything with
`mac`, `send_frames(frames, wait_s=)` and `receive(timeout_s)`): it keeps
sending while the session is down (frames are dropped then, never queued:
a queued probe would hide the gap) and collects answers concurrently.
Sequence numbers are ICMP's 16 bits, so one stream sends at most 65 536
probes (about 55 minutes at 50 ms).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from tools.vpnclient import frames as fr

MAX_PROBES = 65536


@dataclass(frozen=True, slots=True)
class GapReport:
    sent: int
    answered: int
    gaps: tuple[tuple[float, float], ...]  # (last answered send, next answered send)
    interval_s: float

    @property
    def lost(self) -> int:
        return self.sent - self.answered

    @property
    def longest_gap_s(self) -> float:
        """The longest outage, 0.0 if none (resolution: one interval)."""
        return max((b - a for a, b in self.gaps), default=0.0)


@dataclass(slots=True)
class GapTracker:
    interval_s: float
    slack: float = 1.5
    _sent_at: dict[int, float] = field(default_factory=dict)
    _answered: set[int] = field(default_factory=set)

    def sent(self, seq: int, now: float) -> None:
        self._sent_at[seq] = now

    def answered(self, seq: int) -> bool:
        """Record an answer; False if unknown or a duplicate."""
        if seq not in self._sent_at or seq in self._answered:
            return False
        self._answered.add(seq)
        return True

    def report(self) -> GapReport:
        times = sorted(self._sent_at[s] for s in self._answered)
        limit = self.slack * self.interval_s
        gaps = tuple((a, b) for a, b in zip(times, times[1:]) if b - a > limit)
        return GapReport(len(self._sent_at), len(self._answered), gaps, self.interval_s)


async def ping_stream(client, src_ip: str, dst_ip: str, dst_mac: bytes, *, interval_s: float = 0.05,
                      duration_s: float = 10.0, stop: asyncio.Event | None = None,
                      ident: int = 0x4750) -> GapReport:
    """Ping `dst_ip` every `interval_s` for `duration_s` (or until `stop` is
    set); answers are collected until one interval after the last send."""
    tracker = GapTracker(interval_s)
    deadline = time.monotonic() + duration_s

    async def collect() -> None:
        while True:
            try:
                frame = await client.receive(interval_s)
            except asyncio.TimeoutError:
                continue
            e = fr.parse_echo(frame)
            if e is not None and e.reply and e.ident == ident:
                tracker.answered(e.seq)

    collector = asyncio.ensure_future(collect())
    try:
        seq = 0
        while seq < MAX_PROBES and time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            frame = fr.icmp_echo(client.mac, dst_mac, src_ip, dst_ip, ident=ident, seq=seq)
            tracker.sent(seq, time.monotonic())
            await client.send_frames([frame], wait_s=0)
            seq += 1
            await asyncio.sleep(interval_s)
        await asyncio.sleep(min(1.0, 4 * interval_s))  # last answers still in flight
    finally:
        collector.cancel()
    return tracker.report()
