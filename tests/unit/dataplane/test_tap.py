"""tap.py input checks that need no root: bad names are typed errors."""

import asyncio

import pytest

from node.dataplane.tap import DeviceError, open_packet, open_tap


@pytest.mark.parametrize("name", ["", "x" * 16, "a/b", "a\0b"])
def test_bad_interface_names_are_rejected_before_any_syscall(name):
    with pytest.raises(DeviceError):
        asyncio.run(open_tap(name))
    with pytest.raises(DeviceError):
        asyncio.run(open_packet(name))


def test_missing_interface_is_a_device_error():
    with pytest.raises(DeviceError):
        asyncio.run(open_packet("vcnosuch0"))
