"""vpnbus/sockets.py: the ZAP key policy and endpoint text (no sockets)."""

import pytest

from vpnbus.keys import new_keypair
from vpnbus.sockets import KeyPolicy, tcp_endpoint

A, B = new_keypair().public, new_keypair().public


def test_allow_list_changes_at_run_time():
    policy = KeyPolicy([A])
    assert policy.callback("vpnbus", A.encode()) is True
    assert policy.callback("vpnbus", B.encode()) is False
    policy.allow(B)
    policy.revoke(A)
    assert policy.callback("vpnbus", B.encode()) is True
    assert policy.callback("vpnbus", A.encode()) is False
    assert policy.denied == {B: 1, A: 1}
    policy.replace([])
    assert policy.allowed == frozenset()


def test_any_key_mode():
    policy = KeyPolicy(allow_any=True)
    assert policy.callback("vpnbus", B.encode()) is True
    policy.allow_any = False
    assert policy.callback("vpnbus", B.encode()) is False


def test_malformed_keys_refused():
    with pytest.raises(ValueError):
        KeyPolicy(["short"])
    with pytest.raises(ValueError):
        KeyPolicy().allow("~" * 40)


def test_denial_counter_is_bounded():
    policy = KeyPolicy()
    for _ in range(5000):
        policy.callback("vpnbus", new_keypair().public.encode())
    assert len(policy.denied) <= 4097 and sum(policy.denied.values()) == 5000


@pytest.mark.parametrize("host,port,text", [
    ("127.0.0.1", 5555, "tcp://127.0.0.1:5555"),
    ("::1", 0, "tcp://[::1]:0"),
    ("controller.example", 1, "tcp://controller.example:1"),
])
def test_tcp_endpoint(host, port, text):
    assert tcp_endpoint(host, port) == text
