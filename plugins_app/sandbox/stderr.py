"""Supervisor side of a sandbox's fd 2: drained, capped, sanitized, logged with the pid.

Plugin code cannot write to it (the engine's print op is gone); what arrives here comes
from the worker's Python, jsrun or V8 itself (a fatal out-of-memory report, a panic).
It is still treated as untrusted text: control characters are escaped, lines are cut,
and a worker gets a bounded number of log lines over its life.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import deque

logger = logging.getLogger("plugins_app.sandbox")

MAX_LINE_CHARS = 500
MAX_LINES_LOGGED = 200  # per worker process; the rest is counted, not logged
TAIL_LINES = 20  # kept to explain a crash (e.g. V8's "out of memory" report)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_OUT_OF_MEMORY = re.compile(r"out of memory|allocation failed|heap limit|memory allocation of", re.IGNORECASE)


def escape_controls(text: str) -> str:
    """``text`` with C0/C1 control characters and Unicode line separators escaped."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class StderrDrain:
    """Reads one worker's stderr pipe on a daemon thread until EOF."""

    def __init__(self, fd: int, pid: int) -> None:
        self.fd = fd
        self.pid = pid
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.logged = 0
        self.dropped = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sandbox-{pid}-stderr", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending = b""
        try:
            while True:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._line(line)
                if len(pending) > MAX_LINE_CHARS * 4:
                    self._line(pending)
                    pending = b""
            if pending:
                self._line(pending)
        finally:
            try:
                os.close(self.fd)
            except OSError:
                pass
            if self.dropped:
                logger.warning(
                    "sandbox %s: %d more stderr lines were not logged",
                    self.pid,
                    self.dropped,
                    extra={"sandbox_pid": self.pid},
                )
            self._done.set()

    def _line(self, raw: bytes) -> None:
        text = escape_controls(raw.decode("utf-8", "replace").rstrip("\r"))
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS] + "…"
        self.tail.append(text)
        if self.logged >= MAX_LINES_LOGGED:
            self.dropped += 1
            return
        self.logged += 1
        logger.warning("sandbox %s stderr: %s", self.pid, text, extra={"sandbox_pid": self.pid})

    def wait(self, timeout: float) -> bool:
        """Wait until the worker's stderr reached EOF (it exited); True if it did."""
        return self._done.wait(timeout)

    def reported_out_of_memory(self) -> bool:
        """Whether the worker's last words were an allocation failure (V8, Rust or libc)."""
        return any(_OUT_OF_MEMORY.search(line) for line in self.tail)
