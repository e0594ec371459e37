"""The web app's per-session record store: uploads and outputs in a private temporary folder, with expiry.

Each loaded record gets an entry named by a random, unguessable id (the client's handle on it; there
is no other way to reach a record). The entry owns a folder under the store's root, created by the
server with names the server chooses, holding the uploaded files and whatever the app writes for it
(generated CSVs, reports). An entry not used for ``ttl_s`` seconds is removed, folder and all; the
page deletes its record when it loads another or is closed, and the whole root is removed when the
server stops. The store holds at most ``max_entries`` records, dropping the least recently used.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardiolens.signal.record import Record

# ids are secrets.token_urlsafe(18): 24 characters of [A-Za-z0-9_-]
ID_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"


class RecordNotFound(KeyError):
    """No record with that id: never loaded, deleted, or expired."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "record not found"


@dataclass
class Entry:
    """One loaded record and the files the app keeps for it.

    Attributes:
        id: the record's handle, as the client knows it.
        folder: the entry's private folder (uploads in ``upload/``, outputs beside it).
        record: the loaded record.
        origin: ``"upload"`` or ``"example"``.
        downloads: files the client may fetch, by an id the server chose -> (path, media type, file name).
        cache: small per-record results kept between requests (e.g. the last attention maps).
    """

    id: str
    folder: Path
    record: Record
    origin: str
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    downloads: dict[str, tuple[Path, str, str]] = field(default_factory=dict)
    cache: OrderedDict[Any, Any] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_download(self, path: Path, media_type: str, filename: str) -> str:
        """Register a file the entry wrote; returns the id under which the client may download it."""
        key = secrets.token_urlsafe(9)
        with self.lock:
            self.downloads[key] = (path, media_type, filename)
        return key


class RecordStore:
    """Records loaded by clients, each in its own temporary folder, removed after ``ttl_s`` idle seconds.

    Args:
        root: parent folder of the store (default: a new temporary folder, removed by :meth:`close`).
        ttl_s: seconds a record is kept after its last use.
        max_entries: records kept at most; the least recently used goes first.
    """

    def __init__(self, root: str | Path | None = None, ttl_s: float = 1800.0, max_entries: int = 64):
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="cardiolens-app-")) if root is None else Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl_s = float(ttl_s)
        self.max_entries = int(max_entries)
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    def new_folder(self) -> tuple[str, Path]:
        """A fresh id and its (empty) folder, for a record about to be loaded."""
        self.sweep()
        with self._lock:
            key = secrets.token_urlsafe(18)
            self._pending.add(key)
        folder = self.root / key
        folder.mkdir()
        return key, folder

    def discard(self, key: str) -> None:
        """Remove a folder made by :meth:`new_folder` whose record could not be loaded."""
        with self._lock:
            self._pending.discard(key)
        shutil.rmtree(self.root / key, ignore_errors=True)

    def add(self, key: str, record: Record, origin: str) -> Entry:
        """Keep ``record`` under the id and folder from :meth:`new_folder`."""
        entry = Entry(id=key, folder=self.root / key, record=record, origin=origin)
        dropped: list[Entry] = []
        with self._lock:
            self._pending.discard(key)
            self._entries[key] = entry
            while len(self._entries) > self.max_entries:
                dropped.append(self._entries.popitem(last=False)[1])
        for old in dropped:
            shutil.rmtree(old.folder, ignore_errors=True)
        return entry

    def get(self, key: str) -> Entry:
        """The entry of ``key``, marked as used now.

        Raises:
            RecordNotFound: unknown, deleted or expired id.
        """
        self.sweep()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                raise RecordNotFound(
                    "record not found: it was deleted or expired (records are kept "
                    f"{self.ttl_s / 60:g} minutes after their last use); load it again"
                )
            entry.last_used = time.monotonic()
            self._entries.move_to_end(key)
        return entry

    def delete(self, key: str) -> bool:
        """Forget a record and remove its folder; False when it was not there."""
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is not None:
            shutil.rmtree(entry.folder, ignore_errors=True)
        return entry is not None

    def sweep(self) -> int:
        """Remove the records idle for longer than ``ttl_s``; returns how many were removed."""
        now = time.monotonic()
        with self._lock:
            old = [k for k, e in self._entries.items() if now - e.last_used > self.ttl_s]
            gone = [self._entries.pop(k) for k in old]
        for entry in gone:
            shutil.rmtree(entry.folder, ignore_errors=True)
        return len(gone)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def close(self) -> None:
        """Forget every record and remove the store's folder (when the store made it)."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            shutil.rmtree(entry.folder, ignore_errors=True)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
