"""A tiny MQTT 3.1.1-only broker on loopback, to test the link's fallback from MQTT 5.

It answers a version-5 CONNECT the way old brokers do (``mode="connack"``: CONNACK "unacceptable protocol
version", then hang up; ``mode="hangup"``: just hang up) and serves version 4 (3.1.1) enough for the link:
CONNACK, SUBACK, PUBACK for QoS 1 publishes (recorded), PINGRESP. Real bytes on a real socket.
"""
from __future__ import annotations

import socket
import struct
import threading


def _read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _read_packet(conn: socket.socket) -> tuple[int, bytes]:
    header = _read_exact(conn, 1)[0]
    length, shift = 0, 0
    while True:
        byte = _read_exact(conn, 1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return header, _read_exact(conn, length)


class Broker311:
    def __init__(self, mode: str = "connack"):
        self.mode = mode
        self.levels: list[int] = []            # protocol level of every CONNECT received
        self.published: list[tuple[str, bytes]] = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                header, body = _read_packet(conn)
                if header >> 4 != 1:
                    return
                name_len = struct.unpack("!H", body[:2])[0]
                level = body[2 + name_len]
                self.levels.append(level)
                if level != 4:
                    if self.mode == "connack":
                        conn.sendall(b"\x20\x02\x00\x01")
                    return
                conn.sendall(b"\x20\x02\x00\x00")
                while not self._stop:
                    self._answer(conn, *_read_packet(conn))
            except (ConnectionError, OSError):
                return

    def _answer(self, conn: socket.socket, header: int, body: bytes) -> None:
        kind = header >> 4
        if kind == 8:                                     # SUBSCRIBE -> SUBACK granting QoS 1
            conn.sendall(b"\x90\x03" + body[:2] + b"\x01")
        elif kind == 3:                                   # PUBLISH
            qos = (header >> 1) & 3
            tlen = struct.unpack("!H", body[:2])[0]
            topic = body[2:2 + tlen].decode()
            pos = 2 + tlen
            if qos:
                conn.sendall(b"\x40\x02" + body[pos:pos + 2])
                pos += 2
            self.published.append((topic, body[pos:]))
        elif kind == 12:                                  # PINGREQ
            conn.sendall(b"\xd0\x00")
        elif kind == 14:                                  # DISCONNECT
            raise ConnectionError("client disconnected")

    def close(self) -> None:
        self._stop = True
        self.sock.close()
