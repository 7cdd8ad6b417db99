"""The asyncio edge of the binary admin RPC (node/admin/binary_api.py) in
process: calls in order, the bound on a started frame, and no bound
between calls."""

from __future__ import annotations

import asyncio
import struct

import pytest

import node.admin.binary_api as binary_api
from node.admin.binary_rpc import FrameReader, frame
from node.admin.dispatch import AdminContext
from node.softether.errors import Err
from node.softether.pack import Pack
from tests.unit.dataplane.fakes import make_server


class _Writer:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        pass


def _replies(data: bytes) -> list[Pack]:
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        out.append(Pack.decode(data[pos + 4:pos + 4 + n]))
        pos += 4 + n
    return out


def _call(name: str, **ints: int) -> bytes:
    p = Pack()
    p.add_str("function_name", name)
    for k, v in ints.items():
        p.add_int(k, v)
    return frame(p)


async def _serve(tmp_path, feed: list[bytes | None], frame_timeout_s: float = 5.0) -> tuple[_Writer, BaseException | None]:
    """Feed chunks (None = wait 0.2 s) then EOF; returns what was written and what ended the loop."""
    server = make_server(tmp_path)
    reader = asyncio.StreamReader()
    writer = _Writer()
    ctx = AdminContext(server=server)

    async def producer() -> None:
        for chunk in feed:
            if chunk is None:
                await asyncio.sleep(0.2)
            else:
                reader.feed_data(chunk)
        reader.feed_eof()

    old = binary_api.FRAME_TIMEOUT_S
    binary_api.FRAME_TIMEOUT_S = frame_timeout_s
    task = asyncio.create_task(producer())
    try:
        await binary_api._serve_calls(ctx, FrameReader(), reader, writer)  # type: ignore[arg-type]
        ended: BaseException | None = None
    except BaseException as e:  # noqa: BLE001  (the test inspects it)
        ended = e
    finally:
        binary_api.FRAME_TIMEOUT_S = old
        task.cancel()
    return writer, ended


def test_calls_are_answered_in_order_with_errors_as_replies(tmp_path):
    data = _call("Test", IntValue=4) + _call("NoSuchMethod") + _call("CreateHub", HubType=9)
    writer, ended = asyncio.run(_serve(tmp_path, [data[:7], None, data[7:]]))
    assert ended is None  # EOF ends the loop quietly
    replies = _replies(bytes(writer.data))
    assert [r.get_int("error") for r in replies] == [0, Err.NOT_SUPPORTED, Err.INVALID_PARAMETER]
    assert replies[0].get_int("IntValue") == 4


def test_a_started_frame_must_arrive_in_time_but_idle_time_is_free(tmp_path):
    # idle between calls for longer than the frame bound: still served
    writer, ended = asyncio.run(_serve(tmp_path, [_call("Test"), None, None, _call("Test")], frame_timeout_s=0.1))
    assert ended is None and len(_replies(bytes(writer.data))) == 2
    # half a frame, then silence past the bound: the connection is given up
    writer, ended = asyncio.run(_serve(tmp_path, [_call("Test")[:6], None, None], frame_timeout_s=0.1))
    assert isinstance(ended, TimeoutError) and writer.data == b""


@pytest.mark.parametrize("bad", [struct.pack(">I", 1 << 30), struct.pack(">I", 5) + b"\xff" * 5],
                         ids=["oversized", "garbage"])
def test_bad_frames_end_the_loop(tmp_path, bad):
    writer, ended = asyncio.run(_serve(tmp_path, [_call("Test") + bad + _call("Test")]))
    assert isinstance(ended, binary_api.FrameError)
    assert len(_replies(bytes(writer.data))) == 1  # nothing after the bad frame
