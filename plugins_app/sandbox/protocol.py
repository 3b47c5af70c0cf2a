"""Length-prefixed JSON frames over a pair of pipes (dedicated descriptors, never stdio).

Shared by the supervisor (Django process) and the sandbox worker, so it imports nothing
but the standard library and orjson (frames are on the path of every call).
"""

from __future__ import annotations

import os
import struct
from typing import Any

import orjson

HEADER = struct.Struct(">I")
# A frame carries at most the argument/result caps plus the plugin source; anything
# bigger is a protocol violation, not data.
MAX_FRAME_BYTES = 64 * 1024 * 1024
READ_BYTES = 64 * 1024


class ProtocolError(Exception):
    """The peer closed the pipe or sent something that is not a valid frame."""


def encode(message: dict[str, Any]) -> bytes:
    try:
        body = orjson.dumps(message)
    except TypeError as exc:  # a lone surrogate or a non-JSON value: never sent half-valid
        raise ProtocolError(f"frame cannot be encoded: {exc}") from None
    if len(body) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds {MAX_FRAME_BYTES}")
    return HEADER.pack(len(body)) + body


def dumps_text(value: Any) -> str:
    """Compact JSON text of plain data (lists, strings, numbers)."""
    return orjson.dumps(value).decode()


def write_message(fd: int, message: dict[str, Any]) -> None:
    data = memoryview(encode(message))
    while data:
        written = os.write(fd, data)
        data = data[written:]


class FrameReader:
    """Accumulates bytes read from a file descriptor and yields whole frames."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray()

    def pop(self) -> dict[str, Any] | None:
        """Return the next complete message already buffered, or None."""
        if len(self._buffer) < HEADER.size:
            return None
        (length,) = HEADER.unpack_from(self._buffer)
        if length > MAX_FRAME_BYTES:
            raise ProtocolError(f"frame of {length} bytes exceeds {MAX_FRAME_BYTES}")
        end = HEADER.size + length
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[HEADER.size : end])
        del self._buffer[:end]
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ProtocolError(f"invalid frame: {exc}") from None
        if not isinstance(message, dict):
            raise ProtocolError("frame is not an object")
        return message

    def buffered(self) -> bool:
        """Whether bytes are waiting in the buffer (a frame, or part of one)."""
        return bool(self._buffer)

    def fill(self) -> None:
        """Read once from the descriptor (it must be readable); EOF raises ProtocolError."""
        # 64 KiB: a 1 MiB read buffer costs ~16 us per read, allocated every time.
        chunk = os.read(self.fd, READ_BYTES)
        if not chunk:
            raise ProtocolError("peer closed the pipe")
        self._buffer += chunk

    def read_blocking(self) -> dict[str, Any]:
        while True:
            message = self.pop()
            if message is not None:
                return message
            self.fill()
