"""The configuration sync core (controller/config_sync.py) fed by hand: one
delta per change, a gap or a new member → a chunked full sync, chunks under
the budget and resumable, undeliverable items and failed pushes visible."""

from __future__ import annotations

from dataclasses import replace

import msgpack
import pytest

from controller import messages as msg
from controller.config_sync import (
    ConfigReceiver, ConfigSync, Push, SyncState, size_bound,
)
from vpnbus.envelope import Envelope, encode
from vpnbus.records import NATIVE

M = 5


def user(name: str, note: str = "") -> msg.UserConfig:
    return msg.UserConfig(name=name, auth_type=1, hashed_key=b"k" * 20, note=note)


def hub(name: str, users: int = 0, prefix: str = "u") -> msg.HubConfig:
    return msg.HubConfig(name=name, hub_type=1, online=True, max_session=0, no_enum=False, hashed_password=b"h" * 20,
                         secure_password=b"s" * 20, created_time=1.0,
                         users=[user(f"{prefix}{i}") for i in range(users)])


def run(sync: ConfigSync, receiver: ConfigReceiver, now: float = 0.0, limit: int = 1000) -> list[Push]:
    """Deliver every push to `receiver` until the sync has nothing to send."""
    sent = []
    for _ in range(limit):
        pushes = sync.take_pushes(now)
        if not pushes:
            return sent
        for p in pushes:
            sent.append(p)
            take = receiver.delta if isinstance(p.message, msg.ConfigDelta) else receiver.chunk
            reply, _ = take(p.message)  # type: ignore[operator]
            sync.acknowledged(p.member_id, p.generation, reply, now)
    raise AssertionError("sync did not settle")


def test_size_bound_is_an_upper_bound_of_the_encoding():
    for record in (user("alice", note="x" * 300), hub("H", users=40), user("ü" * 50)):
        assert size_bound(record) >= len(msgpack.packb(NATIVE.encode(record), use_bin_type=True))


def test_new_member_gets_a_chunked_full_sync_then_one_delta_per_change():
    hubs = [hub(f"H{i}", users=30) for i in range(40)]
    sync = ConfigSync(hubs, serial=10, chunk_bytes=8 * 1024)
    receiver = ConfigReceiver()
    sync.joined(M)
    sent = run(sync, receiver)
    probe, *chunks = [p.message for p in sent]
    assert probe == msg.ConfigDelta(base_serial=10, serial=10, changes=[])
    assert len(chunks) > 10 and all(isinstance(c, msg.ConfigChunk) for c in chunks)
    for c in chunks:  # each well under the budget, as the bus encodes it
        assert len(encode(Envelope(message=c, id=1, reply_to=None))) <= 8 * 1024
    assert receiver.serial == 10 and list(receiver.hubs.values()) == hubs
    assert sync.status(M).state is SyncState.IN_SYNC and sync.status(M).serial == 10

    changed = [*hubs[:3], replace(hubs[3], users=[*hubs[3].users, user("new")]), *hubs[5:], hub("NEW", users=1)]
    assert sync.configure(changed, serial=11)
    (p,) = run(sync, receiver)
    assert p.message == msg.ConfigDelta(base_serial=10, serial=11, changes=[
        msg.HubChange(hub="H3", users_put=[user("new")]),
        msg.HubChange(hub="NEW", settings=replace(hub("NEW"), users=[]), users_put=[user("u0")]),
        msg.HubChange(hub="H4", deleted=True)])
    assert size_bound(p.message) < 2048  # a change costs a delta, not the configuration
    assert list(receiver.hubs.values()) == changed and receiver.serial == 11

    assert not sync.configure(changed, serial=12)  # another part of the config: nothing to send
    assert run(sync, receiver) == [] and sync.status(M).controller_serial == 11


def test_a_hub_larger_than_a_chunk_continues_in_the_next_ones():
    big = hub("BIG", users=400)
    sync = ConfigSync([hub("A", 2), big, hub("Z", 2)], serial=3, chunk_bytes=4096)
    receiver = ConfigReceiver()
    sync.joined(M)
    chunks = [p.message for p in run(sync, receiver)][1:]
    assert sum(1 for c in chunks for h in c.hubs if h.name == "BIG") > 5
    assert receiver.hubs["big"] == big and list(receiver.hubs) == ["a", "big", "z"]


def test_a_member_behind_the_log_gets_a_full_sync_and_one_at_a_gap_says_so():
    sync = ConfigSync([hub("A", 1)], serial=1, delta_log=2)
    receiver = ConfigReceiver()
    sync.joined(M)
    run(sync, receiver)
    sync.left(M)  # away while three changes happen: the log keeps two
    for serial in (2, 3, 4):
        sync.configure([hub("A", serial)], serial)
    sync.joined(M)
    kinds = [type(p.message) for p in run(sync, receiver)]
    assert kinds == [msg.ConfigDelta, msg.ConfigChunk] and receiver.serial == 4

    # A member that lost its copy (restarted) answers a delta with its serial: a gap.
    lost = ConfigReceiver()
    sync.configure([hub("A", 5)], 5)
    (p,) = sync.take_pushes(0.0)
    reply, update = lost.delta(p.message)  # type: ignore[arg-type]
    assert reply == msg.ConfigAck(serial=-1) and update is None
    sync.acknowledged(M, p.generation, reply, 0.0)
    assert sync.status(M).state is SyncState.SENDING
    (full,) = sync.take_pushes(0.0)
    assert isinstance(full.message, msg.ConfigChunk) and full.message.serial == 5


def test_full_sync_resumes_where_the_member_stopped():
    sync = ConfigSync([hub(f"H{i}", 20) for i in range(20)], serial=7, chunk_bytes=4096)
    receiver = ConfigReceiver()
    sync.joined(M)
    (probe,) = sync.take_pushes(0.0)
    sync.acknowledged(M, probe.generation, msg.ConfigAck(serial=-1), 0.0)
    for _ in range(3):
        (p,) = sync.take_pushes(0.0)
        sync.acknowledged(M, p.generation, receiver.chunk(p.message)[0], 0.0)  # type: ignore[arg-type]
    (lost,) = sync.take_pushes(0.0)
    receiver.chunk(lost.message)  # type: ignore[arg-type]  # applied, but the acknowledgement is lost
    sync.failed(M, lost.generation, "request timed out", 0.5)
    assert sync.status(M).state is SyncState.FAILED and "timed out" in sync.status(M).text()
    assert sync.take_pushes(1.0) == [] and sync.next_deadline() == 1.5  # backoff
    (again,) = sync.take_pushes(1.5)
    assert again.message.index == 3  # type: ignore[union-attr]  # resent; the member says where it is
    ack, _ = receiver.chunk(again.message)  # type: ignore[arg-type]
    assert ack.next_index == 4
    sync.acknowledged(M, again.generation, ack, 1.5)
    (nxt,) = sync.take_pushes(1.5)
    assert nxt.message.index == 4  # type: ignore[union-attr]
    sync.acknowledged(M, nxt.generation, receiver.chunk(nxt.message)[0], 1.5)  # type: ignore[arg-type]
    run(sync, receiver, now=1.5)
    assert receiver.serial == 7 and len(receiver.hubs) == 20 and sync.status(M).state is SyncState.IN_SYNC


def test_outcomes_of_before_a_rejoin_are_ignored():
    sync = ConfigSync([hub("A")], serial=1)
    sync.joined(M)
    (old,) = sync.take_pushes(0.0)
    sync.joined(M)
    sync.acknowledged(M, old.generation, msg.ConfigAck(serial=1), 0.1)
    assert sync.status(M).state is SyncState.PROBING
    (new,) = sync.take_pushes(0.1)
    assert new.generation != old.generation


@pytest.mark.parametrize("bad, why", [
    (user("huge", note="x" * 200_000), "over the"),
    (user("surrogate", note="\ud800"), "surrogates not allowed"),
])
def test_an_item_no_frame_can_carry_is_left_out_and_shown(bad, why):
    sync = ConfigSync([hub("A", 2)], serial=1)
    receiver = ConfigReceiver()
    sync.joined(M)
    run(sync, receiver)
    sync.configure([replace(hub("A", 2), users=[*hub("A", 2).users, bad, user("ok")])], 2)
    (p,) = run(sync, receiver)
    assert p.message.changes == [msg.HubChange(hub="A", users_put=[user("ok")])]  # type: ignore[union-attr]
    encode(Envelope(message=p.message, id=1, reply_to=None))  # the rest goes
    text = sync.status(M).text()
    assert text.startswith("in sync: not sent to members: user") and why in text and bad.name in text
    (note,) = sync.take_notes()
    assert bad.name in note and why in note
    # A full sync leaves it out too; deleting it clears the problem.
    fresh = ConfigReceiver()
    sync.joined(M)
    run(sync, fresh)
    assert [u.name for u in fresh.hubs["a"].users] == ["u0", "u1", "ok"]
    sync.configure([hub("A", 2)], 3)
    run(sync, fresh)
    assert sync.status(M).text() == "in sync" and [u.name for u in fresh.hubs["a"].users] == ["u0", "u1"]


def test_a_bulk_change_over_the_budget_is_a_full_sync_not_one_large_delta():
    sync = ConfigSync([hub("A")], serial=1, chunk_bytes=4096)
    receiver = ConfigReceiver()
    sync.joined(M)
    run(sync, receiver)
    sync.configure([hub("A", users=200)], 2)
    kinds = {type(p.message) for p in run(sync, receiver)}
    assert kinds == {msg.ConfigChunk} and receiver.hubs["a"] == hub("A", users=200)


def test_receiver_refuses_an_inconsistent_delta_and_forgets_its_serial():
    receiver = ConfigReceiver()
    receiver.chunk(msg.ConfigChunk(sync_id=1, serial=4, index=0, count=1, hubs=[hub("A")]))
    assert receiver.serial == 4
    with pytest.raises(ValueError, match="does not have it"):
        receiver.delta(msg.ConfigDelta(base_serial=4, serial=5, changes=[
            msg.HubChange(hub="B", users_put=[user("x")])]))
    assert receiver.serial == -1 and list(receiver.hubs) == ["a"]
    with pytest.raises(ValueError):
        receiver.chunk(msg.ConfigChunk(sync_id=2, serial=5, index=3, count=2, hubs=[]))


def test_a_hub_that_could_not_be_sent_goes_whole_once_it_can():
    bad = replace(hub("A", 3), hashed_password=b"x" * 300_000)
    sync = ConfigSync([], serial=1)
    receiver = ConfigReceiver()
    sync.joined(M)
    run(sync, receiver)
    assert not sync.configure([bad], 2)  # nothing that can go
    assert run(sync, receiver) == [] and "hub 'A'" in sync.status(M).text()
    assert not sync.configure([replace(bad, users=[*bad.users, user("late")])], 3)  # a user added meanwhile
    assert run(sync, receiver) == [] and "a" not in receiver.hubs
    fixed = replace(hub("A", 3), users=[*hub("A", 3).users, user("late")])
    sync.configure([fixed], 4)
    run(sync, receiver)
    assert receiver.hubs["a"] == fixed and sync.status(M).text() == "in sync"
