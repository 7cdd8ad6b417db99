"""node/state/model.py ConfigWriter and PerHubCache: the config file's bytes
made hub by hub, equal to what to_doc and json.dumps make, refusing what a
load would refuse, and deriving again only the hubs that changed."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.state import model
from tests.unit.state.test_store import ODD_VALUES


def _server() -> model.Server:
    server = model.Server(admin_password_hash=b"\x01" * 20, listeners=["127.0.0.1:5555"],
                          bridges=[model.Bridge("A", "eth1")])
    for name in ("A", "B"):
        server.hubs.append(model.Hub(name, hub_type=model.HUB_STATIC, hashed_password=b"\x03" * 20,
                                     users=[model.User("u", hashed_key=b"\x02" * 20), model.User("v", note="n")]))
    return server


def _whole(server: model.Server) -> bytes:
    """The file as the whole-document path writes it, checked as a load checks it."""
    data = json.dumps(model.to_doc(server), sort_keys=True).encode("utf-8") + b"\n"
    model.from_doc(json.loads(data))
    return data


def test_the_bytes_are_the_whole_documents_before_and_after_changes():
    writer, server = model.ConfigWriter(), _server()
    assert writer.dumps(server) == _whole(server)
    changed = model.clone(server)
    hub = changed.hubs[1]
    hub.users[0] = dataclasses.replace(hub.users[0], realname="Ünïcode \"quoted\"")
    hub.users.append(model.User("w"))
    changed.hubs.append(model.Hub("C"))
    changed.farm.weight = 300
    assert writer.dumps(changed) == _whole(changed)
    assert model.from_doc(json.loads(writer.dumps(changed))) == changed
    emptied = model.clone(changed)
    emptied.hubs.clear()
    assert writer.dumps(emptied) == _whole(emptied)


def test_only_the_hubs_that_changed_are_derived_again():
    derived: list[str] = []
    cache = model.PerHubCache(lambda hub: derived.append(hub.name) or hub.name.lower())
    server = _server()
    assert cache.values(server.hubs) == ["a", "b"] and derived == ["A", "B"]
    changed = model.clone(server)  # as NodeState.change makes the next config
    changed.hubs[0].users.append(model.User("x"))
    assert cache.values(changed.hubs) == ["a", "b"] and derived == ["A", "B", "A"]
    assert cache.values(model.clone(changed).hubs) == ["a", "b"] and derived == ["A", "B", "A"]


# Every field of the server, of a hub and of a user, set to an odd value.
_TARGETS = ([("server", f.name) for f in dataclasses.fields(model.Server) if f.name != "hubs"]
            + [("hub", f.name) for f in dataclasses.fields(model.Hub)]
            + [("user", f.name) for f in dataclasses.fields(model.User)])


@settings(max_examples=400, deadline=None)
@given(target=st.sampled_from(_TARGETS), value=ODD_VALUES)
def test_the_writer_refuses_exactly_what_a_load_would_refuse(target, value):
    writer, server = model.ConfigWriter(), _server()
    warm = model.clone(server)
    warm.hubs[0].users.clear()
    writer.dumps(warm)  # below, hub B comes from the cache and hub A is derived again
    kind, name = target
    if kind == "user":  # users are immutable and shared with the config before: a new one
        server.hubs[0].users[0] = copy.copy(server.hubs[0].users[0])
    record = {"server": server, "hub": server.hubs[0], "user": server.hubs[0].users[0]}[kind]
    object.__setattr__(record, name, value)
    try:
        expected: bytes | None = _whole(server)
    except Exception:
        expected = None
    if expected is None:
        # refused (a ValueError for a bad value; a wrong type, which no
        # admin call can make, fails in the encoder as it always did)
        with pytest.raises(Exception):
            writer.dumps(server)
    else:
        assert writer.dumps(server) == expected
    # whatever it did, the cache still writes a file that loads as the config
    # (bytes may keep an equal value's old spelling: 0 and 0.0 compare equal)
    assert model.from_doc(json.loads(writer.dumps(_server()))) == _server()


def test_duplicate_names_are_refused_in_a_changed_hub_and_across_hubs():
    writer, server = model.ConfigWriter(), _server()
    writer.dumps(server)
    twice = model.clone(server)
    twice.hubs[0].users.append(model.User("U"))
    with pytest.raises(ValueError, match=r"config.hubs\[A\].users: duplicate user names"):
        writer.dumps(twice)
    same = model.clone(server)
    same.hubs.append(model.Hub("a"))
    with pytest.raises(ValueError, match="config.hubs: duplicate hub names"):
        writer.dumps(same)
