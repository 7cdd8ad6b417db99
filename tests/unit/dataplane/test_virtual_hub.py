"""VirtualHub dispatch: one send per out port per batch, failing and
detached ports, close, and the aging timer on a running loop."""

from __future__ import annotations

import asyncio

import pytest

from node.dataplane.virtual_hub import Port, VirtualHub
from tests.unit.dataplane.fakes import BCAST, RecordingPort, eth, hub_with, mac


class BrokenPort(RecordingPort):
    def send_frames(self, frames: list[bytes]) -> None:
        raise RuntimeError("boom")


def test_recording_port_satisfies_the_port_protocol():
    assert isinstance(RecordingPort("x"), Port)


def test_one_send_frames_call_per_out_port_per_batch():
    a, b, c = RecordingPort("a"), RecordingPort("b"), RecordingPort("c")
    hub = hub_with(a, b, c)
    hub.input(b, [eth(BCAST, mac(2))])
    b.calls.clear()
    a.calls.clear()
    c.calls.clear()
    batch = [eth(mac(2), mac(1), 1), eth(BCAST, mac(1), 2), eth(mac(2), mac(1), 3)]
    hub.input(a, batch)
    assert b.calls == [batch]
    assert c.calls == [[batch[1]]]
    assert a.calls == []


def test_a_failing_port_does_not_stop_the_others():
    a, bad, c = RecordingPort("a"), BrokenPort("bad"), RecordingPort("c")
    hub = hub_with(a, bad, c)
    hub.input(a, [eth(BCAST, mac(1))])
    assert c.calls == [[eth(BCAST, mac(1))]]
    assert hub.send_errors == 1


def test_detach_forgets_entries_and_close_detaches_all():
    a, b = RecordingPort("a"), RecordingPort("b")
    hub = hub_with(a, b)
    hub.input(a, [eth(BCAST, mac(1))])
    hub.detach(a)
    hub.detach(a)  # idempotent
    assert hub.mac_table() == []
    with pytest.raises(ValueError):
        hub.attach(b)
    hub.input(a, [eth(BCAST, mac(1))])  # a batch in flight from a detached port
    assert hub.dropped_detached == 1 and b.calls == [[eth(BCAST, mac(1))]]
    hub.close()
    assert hub.ports == []


def test_aging_timer_runs_on_the_loop():
    async def main():
        now = [0.0]
        hub = VirtualHub("HUB", clock=lambda: now[0], aging_interval_s=0.01)
        a = RecordingPort("a")
        hub.attach(a)
        hub.start()
        hub.input(a, [eth(BCAST, mac(1))])
        assert len(hub.mac_table()) == 1
        now[0] = 600.0
        for _ in range(100):
            await asyncio.sleep(0.01)
            if not hub.mac_table():
                break
        assert hub.mac_table() == []
        hub.close()

    asyncio.run(main())
