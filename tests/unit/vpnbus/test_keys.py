"""vpnbus/keys.py: keypairs on disk, modes, validation, pinning."""

import os
import stat

import pytest
import zmq

from vpnbus import keys


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_created_once_then_loaded(tmp_path):
    d = tmp_path / "keys"
    first = keys.load_or_create(d, "node")
    again = keys.load_or_create(d, "node")
    assert first == again and keys.load(d, "node") == first
    assert keys.is_key_text(first.public) and keys.is_key_text(first.secret)
    assert zmq.curve_public(first.secret.encode()).decode() == first.public
    assert mode(d) == 0o700 and mode(d / "node.secret") == 0o600
    assert (d / "node.public").read_text().strip() == first.public
    assert not [p for p in d.iterdir() if p.name.startswith(".tmp-")]
    assert first.secret not in repr(first)


def test_public_file_is_repaired_from_secret(tmp_path):
    pair = keys.load_or_create(tmp_path, "node")
    (tmp_path / "node.public").write_text("stale\n")
    assert keys.load_or_create(tmp_path, "node") == pair
    assert (tmp_path / "node.public").read_text().strip() == pair.public


@pytest.mark.parametrize("content", [b"", b"short\n", b"~" * 40, b"\xff" * 40, b"#" * 40])
def test_invalid_secret_is_an_error_not_a_new_identity(tmp_path, content):
    (tmp_path / "node.secret").write_bytes(content)
    with pytest.raises(keys.KeyFileError):
        keys.load_or_create(tmp_path, "node")
    assert (tmp_path / "node.secret").read_bytes() == content


def test_missing_key_is_an_error(tmp_path):
    with pytest.raises(keys.KeyFileError):
        keys.load(tmp_path, "absent")


def test_pinning(tmp_path):
    other = keys.new_keypair()
    assert keys.load_pinned(tmp_path, "controller") is None
    keys.save_pinned(tmp_path, "controller", other.public)
    assert keys.load_pinned(tmp_path, "controller") == other.public
    with pytest.raises(ValueError):
        keys.save_pinned(tmp_path, "controller", "not-a-key")
    (tmp_path / "controller.pinned").write_text("garbage")
    with pytest.raises(keys.KeyFileError):
        keys.load_pinned(tmp_path, "controller")
    keys.forget_pinned(tmp_path, "controller")
    assert keys.load_pinned(tmp_path, "controller") is None
    keys.forget_pinned(tmp_path, "controller")  # nothing pinned: nothing to do


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "f"
    keys.atomic_write(target, b"one", 0o640)
    keys.atomic_write(target, b"two", 0o600)
    assert target.read_bytes() == b"two" and mode(target) == 0o600
    assert os.listdir(tmp_path) == ["f"]
