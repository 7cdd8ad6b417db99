"""CURVE keypairs kept in a directory of the node's state dir.

Layout of ``key_dir`` (created 0700 on first use)::

    <name>.secret   the z85 secret key and a newline, mode 0600
    <name>.public   the z85 public key and a newline, mode 0644 (informative)
    <name>.pinned   a peer's z85 public key we pinned (e.g. the controller's)

Keys are z85 text everywhere in vpnbus (40 ASCII characters), the form ZAP
reports as the User-Id, so a key read from disk, a key in a config file and the
identity of a peer on the bus compare as plain strings.

Every file is written atomically (temp file in the same directory, fsync,
rename, fsync of the directory), so kill -9 at any moment leaves either the old
file or the new one. :func:`load_or_create` is race-safe between processes: the
secret is published with ``link()`` (fails if the name exists) and the loser
loads the winner's key.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import tempfile
from pathlib import Path

import zmq
from zmq.utils import z85

KEY_TEXT_LEN = 40


class KeyFileError(Exception):
    """A key file is missing, unreadable or does not hold a valid CURVE key.

    Raised by the loaders; the operator must fix or remove the file (we never
    silently replace a node's identity).
    """


@dataclasses.dataclass(frozen=True, slots=True)
class Keypair:
    """A CURVE keypair as z85 text."""

    public: str
    """z85 public key (40 chars); this node's identity on the bus."""
    secret: str = dataclasses.field(repr=False)
    """z85 secret key (40 chars); never logged."""


def is_key_text(text: object) -> bool:
    """True if ``text`` is a well-formed z85 CURVE key (40 chars -> 32 bytes)."""
    if not isinstance(text, str) or len(text) != KEY_TEXT_LEN:
        return False
    try:
        return len(z85.decode(text.encode("ascii"))) == 32
    except (ValueError, UnicodeEncodeError, KeyError, struct.error):
        return False


def new_keypair() -> Keypair:
    """A fresh keypair from libzmq's CSPRNG."""
    public, secret = zmq.curve_keypair()
    return Keypair(public=public.decode("ascii"), secret=secret.decode("ascii"))


def public_of(secret: str) -> str:
    """Derive the z85 public key of a z85 secret key (ValueError if malformed)."""
    if not is_key_text(secret):
        raise ValueError("not a z85 CURVE key")
    return zmq.curve_public(secret.encode("ascii")).decode("ascii")


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically with permission ``mode``."""
    tmp = _write_temp(path.parent, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    _fsync_dir(path.parent)


def load(key_dir: str | os.PathLike, name: str) -> Keypair:
    """Load keypair ``name`` from ``key_dir``. Raises KeyFileError."""
    path = Path(key_dir) / f"{name}.secret"
    secret = _read_key_text(path)
    return Keypair(public=public_of(secret), secret=secret)


def load_or_create(key_dir: str | os.PathLike, name: str) -> Keypair:
    """Load keypair ``name``, creating it (and ``key_dir``) on first use.

    Raises KeyFileError if an existing secret file is invalid.
    """
    directory = Path(key_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret_path = directory / f"{name}.secret"
    if not secret_path.exists():
        pair = new_keypair()
        tmp = _write_temp(directory, (pair.secret + "\n").encode("ascii"), 0o600)
        try:
            os.link(tmp, secret_path)  # no-clobber publish: one creator wins
        except FileExistsError:
            pass
        finally:
            _unlink_quietly(tmp)
        _fsync_dir(directory)
    pair = load(directory, name)
    public_path = directory / f"{name}.public"
    if not public_path.exists() or public_path.read_text("ascii").strip() != pair.public:
        atomic_write(public_path, (pair.public + "\n").encode("ascii"), 0o644)
    return pair


def save_pinned(key_dir: str | os.PathLike, name: str, public: str) -> None:
    """Pin a peer's z85 public key under ``name`` (ValueError if malformed)."""
    if not is_key_text(public):
        raise ValueError("not a z85 CURVE key")
    directory = Path(key_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(_pin_path(directory, name), (public + "\n").encode("ascii"), 0o644)


def _pin_path(key_dir: str | os.PathLike, name: str) -> Path:
    return Path(key_dir) / f"{name}.pinned"


def load_pinned(key_dir: str | os.PathLike, name: str) -> str | None:
    """The pinned key ``name``, or None if none is pinned. KeyFileError if invalid."""
    path = _pin_path(key_dir, name)
    if not path.exists():
        return None
    return _read_key_text(path)


def forget_pinned(key_dir: str | os.PathLike, name: str) -> None:
    """Drop the pinned key ``name`` (nothing to do if none is pinned)."""
    _pin_path(key_dir, name).unlink(missing_ok=True)


def _read_key_text(path: Path) -> str:
    try:
        text = path.read_bytes().decode("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: {exc}") from None
    if not is_key_text(text):
        raise KeyFileError(f"{path}: not a z85 CURVE key")
    return text


def _write_temp(directory: Path, data: bytes, mode: int) -> str:
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp)
        raise
    os.close(fd)
    return tmp


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
