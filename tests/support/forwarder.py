"""A TCP forwarder to put between a server process and PostgreSQL or Redis, and break on purpose.

``Forwarder(("127.0.0.1", 5432))`` listens on a port of its own (``.port``) and forwards every connection
to the target. Its modes, switched at any time and applied to connections already open:

* ``heal()``: forward (the default);
* ``cut()``: close every open connection and refuse new ones (a listening socket that is closed: the
  client sees "connection refused" at once, as with a database that is down or a failover in progress);
* ``hang()``: accept connections and keep them, but forward nothing either way (a database that
  accepts and never answers: a stuck failover, a full disk, a partition behind a proxy). Bytes sent
  meanwhile are dropped, so a connection that lived through a hang is broken afterwards, as it would be.

Pure Python, sockets and threads; ``close()`` stops everything. Used by tests/faults and bench/chaos.py.
"""

from __future__ import annotations

import select
import socket
import threading

FORWARD, CUT, HANG = "forward", "cut", "hang"


class Forwarder:
    def __init__(self, target: tuple[str, int], *, port: int = 0):
        self.target = target
        self.mode = FORWARD
        self.port = port
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket | None]] = []
        self._listener: socket.socket | None = None
        self._closed = False
        self._listen()
        self.connections = 0  # accepted so far (tests read it)

    # --- modes -----------------------------------------------------------------------------------------

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        with self._lock:
            self.mode = CUT
            listener, self._listener = self._listener, None
            pairs, self._pairs = self._pairs, []
        if listener is not None:
            _close(listener)
        for client, upstream in pairs:
            _reset(client)
            if upstream is not None:
                _close(upstream)

    def hang(self) -> None:
        """Accept, but forward nothing (open connections stop answering too)."""
        with self._lock:
            self.mode = HANG
        self._listen()

    def heal(self) -> None:
        with self._lock:
            self.mode = FORWARD
        self._listen()

    def close(self) -> None:
        self._closed = True
        self.cut()

    # --- plumbing --------------------------------------------------------------------------------------

    def _listen(self) -> None:
        with self._lock:
            if self._listener is not None or self._closed:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
            self.port = listener.getsockname()[1]  # the same port after every cut
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by cut()
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            if self.mode == FORWARD:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
        except OSError:
            _close(client)
            return
        with self._lock:
            if self.mode == CUT:
                _reset(client)
                if upstream is not None:
                    _close(upstream)
                return
            self._pairs.append((client, upstream))
        self._pump(client, upstream)

    def _pump(self, client: socket.socket, upstream: socket.socket | None) -> None:
        ends = [client] + ([upstream] if upstream is not None else [])
        try:
            while True:
                ready, _, _ = select.select(ends, [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if self.mode != FORWARD or upstream is None:
                        continue  # hanging: swallowed, never answered
                    (upstream if sock is client else client).sendall(data)
        except (OSError, ValueError):
            return
        finally:
            _close(client)
            if upstream is not None:
                _close(upstream)
            with self._lock:
                self._pairs = [pair for pair in self._pairs if pair[0] is not client]


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the peer sees "connection reset", not a polite end of stream."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    _close(sock)
