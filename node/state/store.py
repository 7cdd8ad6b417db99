"""The node's configuration file: atomic writes, backups, refusal of damage.

Invariants:
- A save is durable when `save()` returns: temp file in the same directory,
  fsync, rename over the config, fsync of the directory. kill -9 at any moment
  leaves either the old or the new file, never a mix; so an acknowledged
  change (acknowledged only after `save()` returned) is never lost.
- A file that does not parse or validate is never replaced by defaults: the
  daemon refuses to start, naming the file and the newest backup that loads.
- Backups (backups/<name>.<UTC time>.<monotonic ns>.<reason>) are written at
  each start and before a mode change; the newest `keep_backups` are kept. A
  backup equal to the newest one for the same reason is not written again,
  so a restart loop cannot push the older, different ones out.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

from vpnbus.keys import atomic_write

T = TypeVar("T")


class ConfigCorrupt(Exception):
    """The config file exists but cannot be used. Raised at load; the daemon
    prints `str(exc)` as its one line and exits without touching the file."""

    def __init__(self, path: Path, reason: str, good_backup: Path | None):
        self.path, self.reason, self.good_backup = path, reason, good_backup
        hint = (f"newest good backup: {good_backup} (copy it over the config to restore)"
                if good_backup else "no good backup exists")
        super().__init__(f"config {path} is unusable ({reason}); {hint}")


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` so that a crash leaves old or new, whole
    (temp file, fsync, rename, fsync of the directory: vpnbus.keys does it
    for key files; one implementation serves both)."""
    atomic_write(Path(path), data, mode)


class ConfigStore(Generic[T]):
    """One JSON document on disk. `decode(doc)` turns a document into what it
    stands for, or raises ValueError with the reason when it is not usable
    (wrong format, version, fields); `load()` returns what it made, so a
    start decodes the file once."""

    def __init__(self, path: Path, decode: Callable[[dict[str, Any]], T],
                 keep_backups: int = 20):
        self.path = Path(path)
        self.backup_dir = self.path.parent / "backups"
        self._decode = decode
        self._keep = keep_backups

    def _read(self, path: Path) -> T:
        raw = path.read_bytes()
        if not raw:
            raise ValueError("the file is empty")
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ValueError("the top level is not an object")
        return self._decode(doc)

    def load(self) -> T:
        try:
            return self._read(self.path)
        except ValueError as exc:
            raise ConfigCorrupt(self.path, str(exc), self.newest_good_backup()) from None
        except OSError as exc:
            raise ConfigCorrupt(self.path, exc.strerror or str(exc), self.newest_good_backup()) from None

    def save(self, doc: dict[str, Any]) -> None:
        self._decode(doc)   # never write what load() would refuse
        # No indent: json's C encoder only runs without one, and this runs in
        # the event loop at every change (6x faster for 1,000 users).
        # `python3 -m json.tool FILE` shows it indented.
        self.save_checked(json.dumps(doc, sort_keys=True).encode("utf-8") + b"\n")

    def save_checked(self, data: bytes) -> None:
        """Write a document already encoded and checked as load() checks it
        (node.state.model.ConfigWriter makes them)."""
        write_atomic(self.path, data)

    def backups(self) -> list[Path]:
        """Backups, newest first."""
        if not self.backup_dir.is_dir():
            return []
        found = [p for p in self.backup_dir.iterdir()
                 if p.name.startswith(self.path.name + ".") and not p.name.startswith(".")]
        return sorted(found, key=lambda p: p.name, reverse=True)

    def newest_good_backup(self) -> Path | None:
        for candidate in self.backups():
            try:
                self._read(candidate)
            except (ValueError, OSError):
                continue
            return candidate
        return None

    def backup(self, reason: str) -> Path | None:
        """Copy the current config into backups/ (atomically); returns the path,
        or None when there is no config yet. `reason` goes into the name."""
        if not self.path.exists():
            return None
        self.backup_dir.mkdir(mode=0o700, exist_ok=True)
        data = self.path.read_bytes()
        safe = "".join(ch if ch.isalnum() else "-" for ch in reason)[:32]
        newest = self.backups()[:1]
        if newest and newest[0].name.endswith("." + safe) and newest[0].read_bytes() == data:
            # The same copy for the same reason (a node restarting in a loop):
            # writing it again would only push older, different backups out.
            return newest[0]
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.backup_dir / f"{self.path.name}.{stamp}.{time.monotonic_ns()}.{safe}"
        write_atomic(target, data)
        for old in self.backups()[self._keep:]:
            old.unlink(missing_ok=True)
        return target
