"""The per-address login backoff (vpnbus/auth_backoff.py), by moving `now` by hand."""

from __future__ import annotations

from vpnbus.auth_backoff import AuthBackoff, LogThrottle, address_key


def _fail(backoff: AuthBackoff, address: str, times: int, now: float) -> list:
    return [backoff.failed(address, now) for _ in range(times)]


def test_a_few_failures_cost_nothing_then_the_wait_doubles_up_to_the_cap():
    backoff = AuthBackoff(free_failures=5, first_delay_s=1.0, max_delay_s=30.0)
    _fail(backoff, "192.0.2.1", 5, now=100.0)
    assert backoff.wait("192.0.2.1", 100.0) == 0.0
    waits = []
    now = 100.0
    for _ in range(8):
        backoff.failed("192.0.2.1", now)
        waits.append(backoff.wait("192.0.2.1", now))
        now += waits[-1]          # it tries again as soon as it may
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_attempts_during_the_wait_are_refused_and_do_not_lengthen_it():
    backoff = AuthBackoff(free_failures=0, first_delay_s=4.0)
    backoff.failed("192.0.2.1", 0.0)
    for t in (0.5, 1.0, 3.9):
        assert backoff.wait("192.0.2.1", t) == 4.0 - t
    assert backoff.wait("192.0.2.1", 4.0) == 0.0
    assert backoff.refused == 3


def test_only_the_failing_address_waits_and_a_success_clears_it():
    backoff = AuthBackoff(free_failures=2)
    _fail(backoff, "198.51.100.7", 50, now=10.0)
    assert backoff.wait("198.51.100.7", 10.0) > 0
    assert backoff.wait("192.0.2.1", 10.0) == 0.0       # the real admin elsewhere is not locked out
    backoff.succeeded("198.51.100.7")
    assert backoff.wait("198.51.100.7", 10.0) == 0.0 and backoff.failures("198.51.100.7") == 0


def test_an_ipv6_host_is_counted_by_its_64_and_mapped_ipv4_as_ipv4():
    assert address_key("2001:db8:1:2::5") == address_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::5") != address_key("2001:db8:1:2::5")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    backoff = AuthBackoff(free_failures=0)
    backoff.failed("2001:db8:1:2::5", 0.0)
    assert backoff.wait("2001:db8:1:2::77", 0.0) > 0


def test_memory_is_bounded_and_quiet_addresses_are_forgotten():
    backoff = AuthBackoff(max_addresses=100, forget_after_s=60.0)
    for n in range(1000):
        backoff.failed(f"10.0.{n // 256}.{n % 256}", 0.0)
    assert len(backoff._addresses) == 100
    backoff.failed("192.0.2.1", 61.0)
    assert backoff.failures("10.0.3.231") == 0 and len(backoff._addresses) == 1


def test_failures_are_logged_in_summary_not_per_attempt():
    backoff = AuthBackoff(free_failures=10_000, log_interval_s=60.0, max_log_lines=20)
    lines = [line for line in _fail(backoff, "192.0.2.1", 1000, now=0.0) if line is not None]
    assert len(lines) == 1 and lines[0].unlogged == 0
    later = backoff.failed("192.0.2.1", 61.0)
    assert later is not None and later.unlogged == 999 and "999 more" in later.suffix()


def test_fresh_addresses_cannot_flood_the_log_either():
    backoff = AuthBackoff(max_log_lines=20)
    logged = [backoff.failed(f"10.1.{n // 256}.{n % 256}", 1.0) for n in range(500)]
    assert sum(line is not None for line in logged) == 20
    first_next = backoff.failed("192.0.2.99", 62.0)
    assert first_next is not None and first_next.unlogged == 480


def test_the_log_throttle_keeps_one_line_per_key_per_interval():
    class Record:
        logged_at: float | None = None
        unlogged = 0
    throttle, a, b = LogThrottle(interval_s=10.0, max_lines=5), Record(), Record()
    assert throttle.decide(a, 0.0) == 0 and throttle.decide(b, 0.0) == 0
    assert [throttle.decide(a, t) for t in (1.0, 2.0, 9.9)] == [None, None, None]
    assert throttle.decide(a, 10.0) == 3
