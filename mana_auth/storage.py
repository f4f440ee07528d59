"""Where the client SDK keeps its token pair. A storage is any object with ``load() -> dict | None``,
``save(dict)`` and ``clear()``; the dict is JSON-serializable."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path


class MemoryStorage:
    """In-process only (the default): gone when the process ends."""

    def __init__(self):
        self._lock = threading.Lock()
        self._data: dict | None = None

    def load(self) -> dict | None:
        with self._lock:
            return dict(self._data) if self._data is not None else None

    def save(self, data: dict) -> None:
        with self._lock:
            self._data = dict(data)

    def clear(self) -> None:
        with self._lock:
            self._data = None


class FileStorage:
    """A JSON file readable by its owner only (0600; a created parent directory gets 0700). Every write
    goes to a temporary file in the same directory, is flushed to disk, then atomically renamed over
    the old one, so a crash never leaves a half-written token file."""

    def __init__(self, path):
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()

    def load(self) -> dict | None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return None
        except ValueError:
            return None  # a corrupt file is treated as "not logged in"
        return data if isinstance(data, dict) else None

    def save(self, data: dict) -> None:
        payload = json.dumps(data).encode()
        with self._lock:
            directory = self.path.parent
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
            try:
                os.fchmod(fd, 0o600)  # mkstemp already creates 0600; say it explicitly
                with os.fdopen(fd, "wb") as handle:
                    handle.write(payload)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, self.path)
            except BaseException:
                try:
                    os.unlink(temp)
                except FileNotFoundError:
                    pass
                raise

    def clear(self) -> None:
        with self._lock:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


class KeyringStorage:
    """The operating system's keyring through the optional ``keyring`` package (imported on first use,
    so the package is needed only by those who choose this storage)."""

    def __init__(self, service: str = "mana-auth", username: str = "default"):
        try:
            import keyring
        except ImportError as exc:
            raise ImportError("KeyringStorage needs the 'keyring' package: pip install keyring") from exc
        self._keyring = keyring
        self.service = service
        self.username = username

    def load(self) -> dict | None:
        raw = self._keyring.get_password(self.service, self.username)
        if not raw:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def save(self, data: dict) -> None:
        self._keyring.set_password(self.service, self.username, json.dumps(data))

    def clear(self) -> None:
        try:
            self._keyring.delete_password(self.service, self.username)
        except self._keyring.errors.PasswordDeleteError:
            pass
