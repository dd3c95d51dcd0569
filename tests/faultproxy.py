"""A TCP proxy that a test switches between forwarding, refusing and going silent.

It listens on an ephemeral 127.0.0.1 port in front of a real server (PostgreSQL, Redis) and
runs in one thread around `select`. Each mode switch takes effect before the call returns:

- `forward()`: relay bytes both ways (the default); connections held while silent stay dead.
- `refuse()`: reset every open connection and every new one, as a server that went away.
- `silent()`: accept new connections and never answer; open ones stop relaying too, as a
  server that hangs. Back in `forward()`, the open ones carry on where they stopped.
"""

from __future__ import annotations

import contextlib
import queue
import select
import socket
import struct
import threading
from types import TracebackType

FORWARD, REFUSE, SILENT, STOP = "forward", "refuse", "silent", "stop"


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN: the peer sees 'connection reset'."""
    with contextlib.suppress(OSError):  # already closed by the peer
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultProxy:
    """A proxy to `target` on 127.0.0.1:`port`; close it (or use it as a context manager)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._mode = FORWARD
        self._peers: dict[socket.socket, socket.socket] = {}  # relayed, both directions
        self._held: set[socket.socket] = set()  # accepted while silent, never relayed
        self._commands: queue.Queue[tuple[str, threading.Event]] = queue.Queue()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name=f"faultproxy-{self.port}")
        self._thread.start()

    def forward(self) -> None:
        self._command(FORWARD)

    def refuse(self) -> None:
        self._command(REFUSE)

    def silent(self) -> None:
        self._command(SILENT)

    def close(self) -> None:
        if self._thread.is_alive():
            self._command(STOP)
            self._thread.join()
        self._wake_reader.close()
        self._wake_writer.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    def _command(self, mode: str) -> None:
        done = threading.Event()
        self._commands.put((mode, done))
        self._wake_writer.send(b"!")
        if not done.wait(10):
            raise RuntimeError(f"fault proxy did not switch to {mode}")

    # --- the proxy thread --------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while self._step():
                pass
        finally:
            for sock in [self._listener, *self._peers, *self._held]:
                sock.close()
            self._peers.clear()
            self._held.clear()
            while not self._commands.empty():  # a STOP waiting for its answer
                self._commands.get()[1].set()

    def _step(self) -> bool:
        watched = [self._wake_reader, self._listener, *self._held]
        if self._mode == FORWARD:
            watched += self._peers
        readable, _, _ = select.select(watched, [], [])
        for sock in readable:
            if sock is self._wake_reader:
                if not self._obey():
                    return False
            elif sock is self._listener:
                self._accept()
            elif sock in self._held:
                self._drain(sock)
            elif sock in self._peers and self._mode == FORWARD:
                self._relay(sock)
        return True

    def _obey(self) -> bool:
        self._wake_reader.recv(64)
        while not self._commands.empty():
            mode, done = self._commands.get()
            if mode == STOP:
                done.set()
                return False
            self._mode = mode
            if mode == REFUSE:
                for sock in [*self._peers, *self._held]:
                    _reset(sock)
                self._peers.clear()
                self._held.clear()
            done.set()
        return True

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        if self._mode == REFUSE:
            _reset(client)
        elif self._mode == SILENT:
            self._held.add(client)
        else:
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                return
            client.settimeout(5)
            self._peers[client], self._peers[upstream] = upstream, client

    def _drain(self, sock: socket.socket) -> None:
        """Read and drop what a held connection sends; forget it once its client hangs up."""
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._held.discard(sock)
            sock.close()

    def _relay(self, sock: socket.socket) -> None:
        peer = self._peers[sock]
        try:
            data = sock.recv(65536)
            if data:
                peer.sendall(data)
                return
        except OSError:
            pass
        for end in (sock, peer):
            self._peers.pop(end, None)
            end.close()
