import json

import pytest

from tools.vpnclient.retry import Backoff, ClientStatus, RetryPolicy, State


def test_delay_doubles_to_the_cap_with_jitter_between_half_and_full():
    p = RetryPolicy(max_retries=10, base_s=0.5, cap_s=4.0)
    assert [p.delay_s(n, 0.0) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert [p.delay_s(n, 0.999999) for n in range(1, 7)] == pytest.approx([0.5, 1.0, 2.0, 4.0, 4.0, 4.0], rel=1e-5)
    assert p.delay_s(10_000, 0.5) == pytest.approx(3.0)  # no overflow for huge counts


def test_backoff_gives_up_after_max_retries_consecutive_failures():
    b = Backoff(RetryPolicy(max_retries=3, base_s=1.0, cap_s=8.0), rand=lambda: 0.0)
    assert [b.failed() for _ in range(4)] == [0.5, 1.0, 2.0, None]
    assert b.failures == 4


def test_success_and_loss_reset_the_count():
    b = Backoff(RetryPolicy(max_retries=2, base_s=1.0, cap_s=8.0), rand=lambda: 0.0)
    b.failed(), b.failed()
    b.succeeded()
    assert b.failed() == 0.5
    assert b.lost() == 0.0 and b.failures == 0  # a lost session is retried at once
    assert b.failed() == 0.5 and b.failed() == 1.0 and b.failed() is None


def test_zero_retries_gives_up_at_the_first_failure():
    assert Backoff(RetryPolicy(max_retries=0)).failed() is None


@pytest.mark.parametrize("kwargs", [dict(max_retries=-1), dict(base_s=0.0), dict(base_s=5.0, cap_s=1.0)])
def test_policy_rejects_tight_loops_and_nonsense(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_status_record_through_a_session_a_loss_and_a_reconnect():
    s = ClientStatus(configured_server="10.0.0.1:443", hub="h", user="u")
    s.started_at = 1.0
    s.connecting(1.0)
    assert s.state is State.CONNECTING
    s.connected(2.0, server="10.0.0.2:443", redirected=True, session_name="SID-U-1", connection_name="CID-1")
    assert (s.state, s.sessions, s.reconnects, s.server) == (State.CONNECTED, 1, 0, "10.0.0.2:443")
    s.disconnected(3.0, "ERR_SESSION_TIMEOUT: x", 13)
    assert (s.state, s.last_error_code, s.disconnected_at) == (State.WAITING, 13, 3.0)
    s.attempt_failed(3.5, "ERR_CONNECT_FAILED: y", 1, failures=1)
    assert s.failed_attempts == 1
    s.connected(4.0, server="10.0.0.3:443", redirected=True, session_name="SID-U-2", connection_name="CID-2")
    assert (s.sessions, s.reconnects, s.failed_attempts) == (2, 1, 0)
    s.finished(5.0, State.STOPPED)
    d = json.loads(json.dumps(s.to_dict()))
    assert d["state"] == "stopped" and d["server"] is None and d["reconnects"] == 1
    assert [h["event"] for h in d["history"]] == ["connected", "lost", "failed", "connected"]
    assert d["connected_at"] == 4.0 and d["configured_server"] == "10.0.0.1:443"


def test_status_history_is_bounded():
    s = ClientStatus(configured_server="a:1", hub="h", user="u")
    for i in range(100):
        s.attempt_failed(float(i), "e", None, i)
    assert len(s.history) == ClientStatus.HISTORY_MAX and s.history[-1]["at"] == 99.0
