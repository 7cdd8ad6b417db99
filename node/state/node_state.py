"""The node's configuration in memory, changed only through `change()`.

`change(fn)` applies `fn` to a copy, saves the copy durably (serial + 1), and
only then makes it current: a change is acknowledged to a caller only after
it is on disk, and an error raised by `fn` leaves both memory and disk as
they were. A save that fails may fail after the rename (the directory fsync):
then memory is reloaded from disk, so the two never disagree, and the caller
still gets the error (the change was not acknowledged as durable). Listeners for changes (the cluster push, later)
are told after the swap.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, TypeVar

from node.state import model
from node.state.store import ConfigStore

log = logging.getLogger("vpnd.state")
T = TypeVar("T")
CONFIG_NAME = "vpnd.config.json"


class NodeState:
    def __init__(self, store: ConfigStore[model.Server], config: model.Server):
        self.store = store
        self._config = config
        self._watchers: list[Callable[[model.Server], None]] = []
        self._writer = model.ConfigWriter()

    @classmethod
    def open(cls, state_dir: Path) -> "NodeState":
        """Load an existing config; raises ConfigCorrupt if it is unusable."""
        store = ConfigStore(state_dir / CONFIG_NAME, model.from_doc)
        state = cls(store, store.load())
        state._writer.dumps(state.config)  # now, not at the first change: each hub's text is kept
        return state

    @classmethod
    def open_or_none(cls, state_dir: Path) -> "NodeState | None":
        """Like open(), but None when no config exists yet (first start)."""
        if not (state_dir / CONFIG_NAME).exists():
            return None
        return cls.open(state_dir)

    @classmethod
    def create(cls, state_dir: Path, config: model.Server) -> "NodeState":
        store = ConfigStore(state_dir / CONFIG_NAME, model.from_doc)
        state = cls(store, config)
        store.save_checked(state._writer.dumps(config))
        return state

    @property
    def config(self) -> model.Server:
        """The current config. Read it; never modify it in place."""
        return self._config

    def change(self, fn: Callable[[model.Server], T]) -> T:
        draft = model.clone(self._config)
        result = fn(draft)
        draft.serial = self._config.serial + 1
        try:
            self.store.save_checked(self._writer.dumps(draft))
        except Exception:
            self._resync()
            raise
        self._set(draft)
        return result

    def _resync(self) -> None:
        """After a failed save: make memory what the disk holds (the old or the
        new document), or keep memory if the disk cannot be read back."""
        try:
            on_disk = self.store.load()
        except Exception:
            log.exception("config save failed and the file cannot be read back")
            return
        if on_disk.serial != self._config.serial:
            log.error("config save failed after the file was replaced; serial %d is in effect",
                      on_disk.serial)
            self._set(on_disk)

    def _set(self, config: model.Server) -> None:
        self._config = config
        for watcher in self._watchers:
            try:
                watcher(config)
            except Exception:  # a watcher bug must not undo an acknowledged change
                log.exception("config watcher failed")

    def watch(self, fn: Callable[[model.Server], None]) -> None:
        self._watchers.append(fn)

    def unwatch(self, fn: Callable[[model.Server], None]) -> None:
        """Stop telling `fn` about changes (no error if it was not watching)."""
        if fn in self._watchers:
            self._watchers.remove(fn)

    def backup(self, reason: str) -> Path | None:
        return self.store.backup(reason)
