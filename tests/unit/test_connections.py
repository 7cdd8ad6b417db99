"""node/connections.py: the listener's connection list (SoftEther's Cedar
ConnectionList) without sockets."""

from node.connections import TYPE_ADMIN_RPC, TYPE_INIT, TYPE_LOGIN, ConnectionRegistry


def test_names_count_up_and_rows_carry_peer_time_and_type():
    reg = ConnectionRegistry(clock=lambda: 1700000000.5)
    a = reg.add("a", "127.0.0.1", 40000, lambda: None)
    b = reg.add("b", "::1", 40001, lambda: None)
    assert (a.name, b.name) == ("CID-1", "CID-2")
    assert (b.ip, b.port, b.connected_at, b.type) == ("::1", 40001, 1700000000.5, TYPE_INIT)
    reg.remove("a")
    c = reg.add("c", "127.0.0.2", 1, lambda: None)
    assert c.name == "CID-3"   # never reused
    assert [x.name for x in reg] == ["CID-2", "CID-3"] and len(reg) == 2


def test_find_ignores_case_and_disconnect_closes_only_that_one():
    closed: list[str] = []
    reg = ConnectionRegistry()
    reg.add("a", "127.0.0.1", 1, lambda: closed.append("a"))
    reg.add("b", "127.0.0.1", 2, lambda: closed.append("b"))
    assert reg.find("cid-2") is not None and reg.find("CID-9") is None
    assert reg.disconnect("cId-2") is True and closed == ["b"]
    assert reg.disconnect("CID-9") is False and closed == ["b"]


def test_a_vpn_session_leaves_the_list_at_login_an_admin_rpc_stays():
    reg = ConnectionRegistry()
    reg.add("vpn", "127.0.0.1", 1, lambda: None)
    reg.add("admin", "127.0.0.1", 2, lambda: None)
    reg.set_type("vpn", TYPE_LOGIN)
    reg.set_type("admin", TYPE_ADMIN_RPC)
    reg.set_type("gone", TYPE_LOGIN)    # a key never added: nothing happens
    reg.established("vpn")
    reg.established("admin")
    assert [(c.name, c.type) for c in reg] == [("CID-2", TYPE_ADMIN_RPC)]
    reg.remove("admin")
    reg.remove("admin")                 # twice (closed after established): no error
    assert len(reg) == 0
