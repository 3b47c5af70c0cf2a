"""The design's floor: one framed request + reply over two pipes to a subprocess, no V8.

The child is started like a sandbox worker (``python -I -c ...``, dedicated pipe
descriptors, scrubbed environment, stdio on /dev/null) and imports only
``plugins_app/sandbox/protocol.py`` (as the worker does, from the sandbox directory). It
answers every ``call`` frame at once with a ``result`` frame shaped like the worker's.
The parent writes with ``protocol.write_message`` and reads like the supervisor does
(``FrameReader.pop``, ``select`` with a timeout, ``fill``).

Used by bench/run.py; not a script of its own.
"""

from __future__ import annotations

import gc
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SANDBOX_DIR = BENCH_DIR.parent / "plugins_app" / "sandbox"
BOOT = (
    f"import sys; sys.path.insert(0, {str(SANDBOX_DIR)!r}); sys.path.insert(0, {str(BENCH_DIR)!r}); "
    "import framed_echo; framed_echo.child()"
)
POLL_SECONDS = 0.05  # as the supervisor's recv (plugins_app/sandbox/pool.py)


def child() -> None:
    """The echo process: answer every frame until the pipe closes."""
    import protocol  # type: ignore[import-not-found]  # the sandbox's own module

    options = json.loads(sys.argv[1])
    reader = protocol.FrameReader(int(options["in_fd"]))
    out_fd = int(options["out_fd"])
    protocol.write_message(out_fd, {"op": "ready", "pid": os.getpid()})
    while True:
        try:
            message = reader.read_blocking()
        except protocol.ProtocolError:
            os._exit(0)
        if message.get("op") == "shutdown":
            os._exit(0)
        protocol.write_message(
            out_fd, {"op": "result", "ok": '"Goodbye, x!"', "warm": [message.get("key")], "id": message.get("id")}
        )


class Echo:
    """Parent side: the child process and the two pipes."""

    def __init__(self) -> None:
        from plugins_app.sandbox import protocol

        self.protocol = protocol
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        options = {"in_fd": to_child_r, "out_fd": from_child_w}
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", BOOT, json.dumps(options)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            pass_fds=(to_child_r, from_child_w),
            close_fds=True,
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"},
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self.in_fd = to_child_w
        self.reader = protocol.FrameReader(from_child_r)
        hello = self.recv(time.monotonic() + 20)
        if hello.get("op") != "ready":
            raise RuntimeError(f"unexpected greeting from the echo process: {hello!r}")

    def recv(self, deadline: float) -> dict:
        reader = self.reader
        while True:
            message = reader.pop()
            if message is not None:
                return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the echo process did not answer")
            readable, _, _ = select.select([reader.fd], [], [], min(remaining, POLL_SECONDS))
            if readable:
                reader.fill()

    def round_trip(self, call_id: str) -> dict:
        self.protocol.write_message(
            self.in_fd,
            {
                "op": "call",
                "key": "bench:1:0123456789abcdef",
                "hook": "farewell",
                "args": '["x"]',
                "timeout": 1.0,
                "id": call_id,
            },
        )
        return self.recv(time.monotonic() + 10)

    def close(self) -> None:
        try:
            self.protocol.write_message(self.in_fd, {"op": "shutdown"})
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.in_fd, self.reader.fd):
            try:
                os.close(fd)
            except OSError:
                pass


def measure(calls: int, warmup: int) -> list[int]:
    """Nanoseconds of ``calls`` request+reply round trips (after ``warmup`` untimed ones)."""
    echo = Echo()
    try:
        ids = [f"{i:024x}" for i in range(warmup + calls)]
        for i in range(warmup):
            echo.round_trip(ids[i])
        clock = time.perf_counter_ns
        out = [0] * calls
        gc.collect()
        gc.disable()
        try:
            for i in range(calls):
                call_id = ids[warmup + i]
                t0 = clock()
                reply = echo.round_trip(call_id)
                out[i] = clock() - t0
                if reply.get("id") != call_id:
                    raise RuntimeError("the echo process answered another call")
        finally:
            gc.enable()
        return out
    finally:
        echo.close()
