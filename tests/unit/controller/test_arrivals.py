"""controller/arrivals.py fed by hand: clients coming back from a member,
and members whose tickets stay unredeemed while clients are sent there."""

from __future__ import annotations

from controller.arrivals import Arrivals, client_key

ALICE = client_key("192.0.2.7", b"u" * 20, "Alice")


def test_a_client_that_comes_back_within_the_window_names_its_member():
    a = Arrivals(return_window_s=30.0)
    assert a.came_back_from(ALICE, 0.0) is None
    a.redirected(ALICE, 3, 1.0)
    assert a.came_back_from(client_key("192.0.2.7", b"u" * 20, "ALICE"), 5.0) == 3  # user names fold case
    assert a.came_back_from(client_key("192.0.2.8", b"u" * 20, "alice"), 5.0) is None
    assert a.came_back_from(ALICE, 31.5) is None   # too late: a new login like any other
    assert a.came_back_from(ALICE, 5.0) is None    # and forgotten


def test_logins_without_a_machine_id_are_not_remembered():
    assert client_key("192.0.2.7", b"", "alice") is None
    a = Arrivals()
    a.redirected(None, 3, 1.0)
    assert a.came_back_from(None, 1.5) is None


def test_the_client_table_is_bounded_oldest_first():
    a = Arrivals(max_clients=2)
    keys = [client_key("192.0.2.7", bytes([i]) * 20, "u") for i in range(3)]
    for i, k in enumerate(keys):
        a.redirected(k, i, float(i))
    assert [a.came_back_from(k, 3.0) for k in keys] == [None, 1, 2]


def test_tickets_unredeemed_for_long_ask_one_check_per_client_sent():
    a = Arrivals(unredeemed_s=2.0)
    assert not a.tickets_reported(4, 1, 0.0)
    assert not a.tickets_reported(4, 1, 1.5)
    assert a.tickets_reported(4, 2, 2.0)
    # still outstanding, but nobody was sent since the check: no second check
    assert not a.tickets_reported(4, 2, 4.5)
    a.redirected(None, 4, 5.0)
    assert a.tickets_reported(4, 3, 5.0)


def test_redeemed_tickets_or_a_gone_member_reset_the_watch():
    a = Arrivals(unredeemed_s=2.0)
    a.tickets_reported(4, 1, 0.0)
    assert not a.tickets_reported(4, 0, 1.0)      # all arrived
    assert not a.tickets_reported(4, 1, 2.5)      # a new wait starts here
    assert a.tickets_reported(4, 1, 4.5)
    a.redirected(ALICE, 4, 5.0)
    a.forget_member(4)
    assert a.came_back_from(ALICE, 6.0) is None
    assert not a.tickets_reported(4, 1, 6.0)
