"""Ticket book: 20 random bytes, single use, 60 s strictly, per hub."""

import itertools

import pytest

from controller.errors import TicketExpired, TicketReused, TicketUnknown
from controller.tickets import TICKET_SIZE, TicketBook, TicketGrant, new_ticket


def counter_random():
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


GRANT = TicketGrant(hub="VPN", user_name="alice", real_user_name="*", group="staff",
                    session_name="SID-ALICE-1", policy={"MaxConnection": 8, "NoBridge": True})


def test_new_ticket_uses_injected_random():
    rnd = counter_random()
    t1, t2 = new_ticket(rnd), new_ticket(rnd)
    assert len(t1) == TICKET_SIZE and t1 != t2
    assert t1 == (1).to_bytes(20, "big")
    assert len(new_ticket()) == 20


def test_short_random_source_rejected():
    with pytest.raises(ValueError):
        new_ticket(lambda n: b"x")


def test_redeem_returns_grant_once():
    book = TicketBook()
    t = new_ticket(counter_random())
    book.store(t, GRANT, now=100.0)
    assert book.outstanding(100.0) == 1
    got = book.redeem(t, "vpn", now=101.0)
    assert got == GRANT and got.policy["MaxConnection"] == 8
    assert book.outstanding(101.0) == 0
    with pytest.raises(TicketReused):
        book.redeem(t, "VPN", now=102.0)


def test_expiry_is_strict_60s():
    book = TicketBook()
    t1, t2 = b"\x01" * 20, b"\x02" * 20
    book.store(t1, GRANT, now=0.0)
    book.store(t2, GRANT, now=0.0)
    assert book.redeem(t1, "VPN", now=59.999) == GRANT
    with pytest.raises(TicketExpired):
        book.redeem(t2, "VPN", now=60.0)
    with pytest.raises(TicketUnknown):
        book.redeem(t2, "VPN", now=60.0)


def test_wrong_hub_wrong_length_unknown():
    book = TicketBook()
    t = b"\x07" * 20
    book.store(t, GRANT, now=0.0)
    for ticket, hub in ((t, "Other"), (b"\x07" * 19, "VPN"), (b"\x08" * 20, "VPN"), (b"", "VPN")):
        with pytest.raises(TicketUnknown):
            book.redeem(ticket, hub, now=1.0)
    assert book.redeem(t, "VPN", now=1.0) == GRANT


def test_store_checks():
    book = TicketBook()
    book.store(b"\x01" * 20, GRANT, now=0.0)
    with pytest.raises(TicketReused):
        book.store(b"\x01" * 20, GRANT, now=1.0)
    with pytest.raises(ValueError):
        book.store(b"\x01" * 21, GRANT, now=1.0)


def test_timer_purges_and_bounds_size():
    book = TicketBook(lifetime_s=60.0)
    book.store(b"\x01" * 20, GRANT, now=0.0)
    book.store(b"\x02" * 20, GRANT, now=30.0)
    book.redeem(b"\x02" * 20, "VPN", now=31.0)
    assert book.next_deadline() == 60.0
    book.handle_timer(60.0)
    assert len(book) == 1 and book.next_deadline() == 90.0
    book.handle_timer(90.0)
    assert len(book) == 0 and book.next_deadline() is None


def test_grant_policy_frozen():
    policy = {"NoBridge": False}
    grant = TicketGrant(hub="h", user_name="u", real_user_name="u", policy=policy)
    policy["NoBridge"] = True
    assert grant.policy["NoBridge"] is False
    with pytest.raises(TypeError):
        grant.policy["x"] = 1
