import dataclasses
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.state import model
from node.state.node_state import NodeState
from node.state.store import ConfigCorrupt, ConfigStore, write_atomic


def _server():
    return model.Server(admin_password_hash=b"\x01" * 20, listeners=["127.0.0.1:5555"])


def test_write_atomic_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "f"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["f"]
    assert (target.stat().st_mode & 0o777) == 0o600


def test_change_is_durable_and_serial_grows(tmp_path):
    state = NodeState.create(tmp_path, _server())
    state.change(lambda c: c.hubs.append(model.Hub("H")))
    reopened = NodeState.open(tmp_path)
    assert [h.name for h in reopened.config.hubs] == ["H"]
    assert reopened.config.serial == 1


def test_failed_change_leaves_memory_and_disk_alone(tmp_path):
    state = NodeState.create(tmp_path, _server())

    def bad(config):
        config.hubs.append(model.Hub("H"))
        raise RuntimeError("refused")
    with pytest.raises(RuntimeError):
        state.change(bad)
    assert state.config.hubs == [] and NodeState.open(tmp_path).config.hubs == []


@pytest.mark.parametrize("fail_at", ["_write_temp", "_fsync_dir"])
def test_failed_save_leaves_memory_equal_to_disk(tmp_path, monkeypatch, fail_at):
    """Before the rename (temp file) the old config stays; after it (directory
    fsync) the new one is on disk, so memory follows it and watchers hear."""
    import vpnbus.keys
    state = NodeState.create(tmp_path, _server())
    heard = []
    state.watch(lambda c: heard.append(c.serial))

    def broken(*args):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(vpnbus.keys, fail_at, broken)
    with pytest.raises(OSError):
        state.change(lambda c: c.hubs.append(model.Hub("H")))
    monkeypatch.undo()
    on_disk = NodeState.open(tmp_path).config
    assert state.config == on_disk
    assert on_disk.serial == (1 if fail_at == "_fsync_dir" else 0)
    assert heard == ([1] if fail_at == "_fsync_dir" else [])


@pytest.mark.parametrize("damage,reason", [
    (b"", "empty"),
    (b'{"format": "vpncluster-config", "version": 1, "server"', "not valid JSON"),
    (b"[]", "not an object"),
    (b'{"format": "other", "version": 1}', "format"),
    (b'{"format": "vpncluster-config", "version": 99}', "unsupported version"),
    (b'{"format": "vpncluster-config", "version": 1, "listeners": []}', "admin_password_hash: missing"),
])
def test_corrupt_config_is_refused_naming_the_good_backup(tmp_path, damage, reason):
    state = NodeState.create(tmp_path, _server())
    state.change(lambda c: c.hubs.append(model.Hub("H")))
    good = state.backup("start")
    state.store.path.write_bytes(damage)
    with pytest.raises(ConfigCorrupt) as exc:
        NodeState.open(tmp_path)
    assert reason in str(exc.value)
    assert str(good) in str(exc.value) and str(state.store.path) in str(exc.value)
    assert state.store.path.read_bytes() == damage   # never silently reset


def test_damaged_backups_are_skipped(tmp_path):
    state = NodeState.create(tmp_path, _server())
    first = state.backup("a")
    second = state.backup("b")
    second.write_bytes(b"garbage")
    assert state.store.newest_good_backup() == first


def test_restart_loop_does_not_push_older_backups_out(tmp_path):
    store = ConfigStore(tmp_path / "c.json", model.from_doc, keep_backups=3)
    store.save(model.to_doc(_server()))
    before = store.backup("mode-change")
    first = store.backup("start")
    assert all(store.backup("start") == first for _ in range(5))
    assert store.backups() == [first, before]
    changed = _server()
    changed.serial = 1
    store.save(model.to_doc(changed))
    assert store.backup("start") not in (first, before) and len(store.backups()) == 3


def test_backups_are_pruned(tmp_path):
    store = ConfigStore(tmp_path / "c.json", model.from_doc, keep_backups=3)
    store.save(model.to_doc(_server()))
    for i in range(6):
        store.backup(f"n{i}")
    assert len(store.backups()) == 3


def test_model_round_trip_and_validation():
    server = _server()
    server.hubs.append(model.Hub("H", users=[model.User("u", hashed_key=b"\x02" * 20)]))
    doc = json.loads(json.dumps(model.to_doc(server)))
    assert model.from_doc(doc) == server
    doc["hubs"][0]["users"].append(dict(doc["hubs"][0]["users"][0], name="U"))
    with pytest.raises(ValueError, match="duplicate user"):
        model.from_doc(doc)
    doc = model.to_doc(server)
    doc["hubs"][0]["online"] = "yes"
    with pytest.raises(ValueError, match=r"hubs\[0\].online: expected bool"):
        model.from_doc(doc)


def test_clone_is_deep_for_records_and_lists_and_shares_the_immutable_users():
    server = _server()
    server.hubs.append(model.Hub("H", users=[model.User("u", hashed_key=b"\x02" * 20)]))
    server.bridges.append(model.Bridge("H", "eth1"))
    copy = model.clone(server)
    assert copy == server
    assert copy.hubs[0].users[0] is server.hubs[0].users[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        copy.hubs[0].users[0].name = "v"  # type: ignore[misc]
    copy.hubs[0].users[0] = dataclasses.replace(copy.hubs[0].users[0], name="v")
    copy.hubs[0].users.append(model.User("w"))
    copy.farm.weight = 7
    copy.listeners.append("x")
    copy.bridges[0].tap = True
    assert server == model.from_doc(model.to_doc(server))
    assert [u.name for u in server.hubs[0].users] == ["u"]
    assert (server.farm.weight, server.listeners, server.bridges[0].tap) == (100, ["127.0.0.1:5555"], False)


def test_listener_addresses_are_checked_at_load():
    assert model.listener_address("[::1]:443") == ("::1", 443)
    assert model.listener_address(":5555") == ("0.0.0.0", 5555)
    for bad in ("127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "h:x"):
        with pytest.raises(ValueError, match="expected ADDR:PORT"):
            model.listener_address(bad)
    doc = model.to_doc(_server())
    doc["listeners"] = ["127.0.0.1:5555", "nowhere"]
    with pytest.raises(ValueError, match=r"config.listeners: expected ADDR:PORT, got 'nowhere'"):
        model.from_doc(doc)


# ---- durability order and save/load agreement ------------------------------------------------

class OsCalls:
    """Records the file-system calls of a save, by path: what reaches the disk
    and in which order (os.open/mkstemp name the fds, the rest refer to them)."""

    def __init__(self, monkeypatch) -> None:
        self.events: list[tuple[str, str]] = []
        self._paths: dict[int, str] = {}
        real_open, real_write, real_fsync, real_replace = os.open, os.write, os.fsync, os.replace

        def opened(path, flags, mode=0o777, *, dir_fd=None):
            fd = real_open(path, flags, mode, dir_fd=dir_fd)
            self._paths[fd] = os.fspath(path)
            return fd

        def write(fd, data):
            self.events.append(("write", self._paths.get(fd, "?")))
            return real_write(fd, data)

        def fsync(fd):
            self.events.append(("fsync", self._paths.get(fd, "?")))
            return real_fsync(fd)

        def replace(src, dst, **kw):
            self.events.append(("replace", f"{os.fspath(src)} -> {os.fspath(dst)}"))
            return real_replace(src, dst, **kw)

        for name, fn in (("open", opened), ("write", write), ("fsync", fsync), ("replace", replace)):
            monkeypatch.setattr(os, name, fn)

    def index(self, kind: str, path: str) -> int:
        """Where the first such call is (ValueError when there was none)."""
        return self.events.index((kind, path))


def test_a_save_reaches_the_disk_in_the_durable_order(tmp_path, monkeypatch):
    state = NodeState.create(tmp_path, _server())
    calls = OsCalls(monkeypatch)
    state.change(lambda c: c.hubs.append(model.Hub("H")))
    monkeypatch.undo()
    config = str(state.store.path)
    (replace,) = [i for i, (kind, _) in enumerate(calls.events) if kind == "replace"]
    tmp, target = calls.events[replace][1].split(" -> ")
    assert target == config and os.path.dirname(tmp) == str(tmp_path) and tmp != config
    # the temp file is written whole and fsynced, then renamed over the config,
    # then the directory holding the name is fsynced
    last_write = max(i for i, e in enumerate(calls.events) if e == ("write", tmp))
    dir_synced = [i for i, e in enumerate(calls.events) if e == ("fsync", str(tmp_path))]
    assert last_write < calls.index("fsync", tmp) < replace < max(dir_synced, default=-1)
    assert ("write", config) not in calls.events   # never written in place
    assert NodeState.open(tmp_path).config.hubs[0].name == "H"


def _valid_doc() -> dict:
    server = _server()
    server.hubs.append(model.Hub("H", users=[model.User("u", hashed_key=b"\x02" * 20)]))
    return model.to_doc(server)


def _paths(doc, prefix=()):
    """Every key/index path in a document, to mutate one field at a time."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        yield prefix + (k,)
        yield from _paths(v, prefix + (k,))


ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True), st.text(max_size=6),
    st.sampled_from(["\ud800", "a\0b", (1, 2), b"x", {1: 2}, [], {}, 2 ** 64, "zz:1", "127.0.0.1:0"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(list(_paths(_valid_doc()))), value=ODD_VALUES)
def test_save_refuses_what_load_would_reject(tmp_path, path, value):
    store = ConfigStore(tmp_path / "c.json", model.from_doc)
    store.save(_valid_doc())
    before = store.path.read_bytes()
    doc = _valid_doc()
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    try:
        store.save(doc)
    except ValueError:
        assert store.path.read_bytes() == before   # refused: the old file stays
        return
    store.load()   # saved: then it loads (ConfigCorrupt would fail the test)
