"""The OS layers of sandbox processes (plugins_app/sandbox/oslayers.py) and their checks.

Every layer test runs a REAL separate process (``python -I``, as the pool starts
sandboxes) that imports what it needs, applies ``oslayers.apply(...)`` and then tries
things, printing a JSON report on its stdout (an inherited pipe).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core import checks as django_checks

import plugins_app.sandbox
from plugins_app import checks_sandbox
from plugins_app.sandbox import oslayers

SANDBOX_DIR = str(Path(plugins_app.sandbox.__file__).resolve().parent)
PROBE = oslayers.probe("nobody")
IS_ROOT = os.geteuid() == 0
HAS_SECCOMP = PROBE["seccomp"]["available"]
HAS_LANDLOCK = PROBE["landlock"]["available"]
needs_seccomp = pytest.mark.skipif(not HAS_SECCOMP, reason=f"no seccomp here: {PROBE['seccomp'].get('reason')}")
needs_landlock = pytest.mark.skipif(not HAS_LANDLOCK, reason=f"no Landlock here: {PROBE['landlock'].get('reason')}")
needs_root = pytest.mark.skipif(not IS_ROOT, reason="the user switch happens only when running as root")

ALL_ON = {"seccomp": True, "landlock": True, "user": "nobody"}
ALL_OFF = {"seccomp": False, "landlock": False, "user": None}

# Runs in the child before the test's own lines: imports, then apply(), then helpers.
PRELUDE = """
import json, os, sys
sys.path.insert(0, {sandbox_dir!r})
import oslayers
{imports}
{before}
report = {{"layers": oslayers.apply(json.loads(sys.argv[1]))}}

def attempt(name, fn):
    try:
        report[name] = {{"ok": True, "value": fn()}}
    except OSError as exc:
        report[name] = {{"ok": False, "errno": exc.errno, "error": str(exc)}}
    except Exception as exc:
        report[name] = {{"ok": False, "errno": None, "error": f"{{type(exc).__name__}}: {{exc}}"}}
"""


def run_sandboxed(
    options: dict[str, Any],
    body: str,
    *,
    imports: str = "",
    before: str = "",
    pass_fds: tuple[int, ...] = (),
    argv: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run ``body`` in a new ``python -I`` process after ``oslayers.apply(options)``;
    return the ``report`` dict it printed."""
    code = PRELUDE.format(sandbox_dir=SANDBOX_DIR, imports=imports, before=textwrap.dedent(before))
    # os._exit: interpreter finalization with jsrun threads alive can abort.
    code += textwrap.dedent(body) + "\nprint(json.dumps(report), flush=True)\nos._exit(0)\n"
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code, json.dumps(options), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        pass_fds=pass_fds,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory (with one file) that any user may write, so that only the OS layers,
    not file permissions, can stop a write by the sandbox's user."""
    path = Path(tempfile.mkdtemp(prefix="oslayers-"))
    path.chmod(0o777)
    existing = path / "existing.txt"
    existing.write_text("before\n")
    existing.chmod(0o666)
    yield path
    shutil.rmtree(path)


# Imported by the child before apply(): after the user switch the standard library may
# be unreadable.
TRY_IMPORTS = "import ctypes, mmap, resource, socket, threading"
TRY_EVERYTHING = """
libc = ctypes.CDLL(None, use_errno=True)

def call(fn, *args):
    if fn(*args) == -1:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))
    return 0

directory = sys.argv[2]
attempt("socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
attempt("unix_socket", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
attempt("exec", lambda: os.execv("/bin/true", ["true"]))
attempt("fork", lambda: os.fork() or os._exit(0))
attempt("write_new", lambda: open(os.path.join(directory, "new.txt"), "w").close())
attempt("append", lambda: open(os.path.join(directory, "existing.txt"), "a").close())
attempt("read_write", lambda: os.close(os.open(os.path.join(directory, "existing.txt"), os.O_RDWR)))
attempt("unlink", lambda: os.unlink(os.path.join(directory, "existing.txt")))
attempt("mkdir", lambda: os.mkdir(os.path.join(directory, "sub")))
attempt("unshare", lambda: call(libc.unshare, 0x10000000))  # CLONE_NEWUSER
attempt("ptrace", lambda: call(libc.ptrace, 0, 0, 0, 0))  # PTRACE_TRACEME
attempt("kill_init", lambda: os.kill(1, 0))

attempt("read", lambda: open(os.path.join(directory, "existing.txt")).read())
attempt("statm", lambda: len(open("/proc/self/statm").read().split()))
seen = []
def work():
    seen.append(threading.get_ident())
thread = threading.Thread(target=work)
attempt("thread", lambda: (thread.start(), thread.join(), len(seen))[-1])
def anonymous_memory():
    with mmap.mmap(-1, 1 << 20) as m:
        m[:5] = b"hello"
        return m[:5].decode()
attempt("mmap", anonymous_memory)
attempt("pipe", lambda: os.write(int(sys.argv[3]), b"through the pipe"))
attempt("rlimit", lambda: resource.setrlimit(resource.RLIMIT_DATA, (1 << 33, resource.getrlimit(resource.RLIMIT_DATA)[1])))
attempt("socketpair", lambda: [s.close() for s in socket.socketpair()] and "unix pair")
attempt("kill_self", lambda: os.kill(os.getpid(), 0))
attempt("ids", lambda: [os.getresuid(), os.getresgid(), os.getgroups()])
"""


def assert_refused(report: dict[str, Any], name: str, number: int = errno.EPERM) -> None:
    assert report[name]["ok"] is False, (name, report[name])
    assert report[name]["errno"] == number, (name, report[name])


@needs_seccomp
@needs_landlock
def test_all_layers_refuse_sockets_exec_and_writes_and_allow_what_the_worker_needs(shared_dir: Path):
    read_fd, write_fd = os.pipe()
    try:
        report = run_sandboxed(
            ALL_ON, TRY_EVERYTHING, imports=TRY_IMPORTS, argv=(str(shared_dir), str(write_fd)), pass_fds=(write_fd,)
        )
        os.close(write_fd)
        write_fd = -1
        piped = os.read(read_fd, 100)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    layers = report["layers"]
    assert {name: entry["active"] for name, entry in layers.items()} == {
        "user": True,
        "no_new_privs": True,
        "landlock": True,
        "seccomp": True,
    }, layers
    # Refused by the seccomp filter (EPERM: not permissions, which would be EACCES).
    for name in (
        "socket",
        "unix_socket",
        "exec",
        "fork",
        "write_new",
        "append",
        "read_write",
        "unlink",
        "mkdir",
        "unshare",
        "ptrace",
        "kill_init",
    ):
        assert_refused(report, name)
    assert not (shared_dir / "new.txt").exists()
    assert not (shared_dir / "sub").exists()
    assert (shared_dir / "existing.txt").read_text() == "before\n"
    # Still works.
    for name in ("read", "statm", "thread", "mmap", "pipe", "rlimit", "socketpair", "kill_self"):
        assert report[name]["ok"], (name, report[name])
    assert report["read"]["value"] == "before\n"
    assert report["statm"]["value"] == 7
    assert report["thread"]["value"] == 1
    assert report["mmap"]["value"] == "hello"
    assert piped == b"through the pipe"


def test_without_layers_the_same_process_can_do_all_of_it(shared_dir: Path):
    """The control: nothing in the test itself stops those operations."""
    read_fd, write_fd = os.pipe()
    body = TRY_EVERYTHING.replace('attempt("exec"', '# attempt("exec"').replace(
        'attempt("ptrace"', '# attempt("ptrace"'
    )
    try:
        report = run_sandboxed(
            ALL_OFF, body, imports=TRY_IMPORTS, argv=(str(shared_dir), str(write_fd)), pass_fds=(write_fd,)
        )
    finally:
        os.close(read_fd)
        os.close(write_fd)
    for name in ("socket", "write_new", "append", "read_write", "fork", "mkdir", "unlink", "pipe", "thread"):
        assert report[name]["ok"], (name, report[name])
    assert report["layers"]["seccomp"] == {"active": False, "reason": "disabled (SANDBOX_SECCOMP is False)"}
    assert report["layers"]["landlock"] == {"active": False, "reason": "disabled (SANDBOX_LANDLOCK is False)"}


@needs_seccomp
@needs_landlock
def test_jsrun_runs_javascript_and_calls_python_after_the_layers():
    report = run_sandboxed(
        ALL_ON,
        """
        def plain():
            runtime = jsrun.Runtime()
            try:
                runtime.bind_function("add", lambda a, b: a + b)
                runtime.bind_function("year", lambda d: d.year)
                return [runtime.eval("1+1"), runtime.eval("add(2, 3)"), runtime.eval("year(new Date(Date.UTC(2024, 1, 1)))")]
            finally:
                runtime.close()

        async def asynchronous():
            runtime = jsrun.Runtime()
            try:
                runtime.bind_function("twice", lambda x: 2 * x)
                fn = await runtime.eval_async("async (x) => twice(x) + 1")
                return await fn.call_async(20)
            finally:
                runtime.close()

        attempt("plain", plain)
        attempt("async", lambda: loop.run_until_complete(asynchronous()))
        attempt("socket", lambda: socket.socket())
        """,
        imports="import asyncio, socket, jsrun",
        before="loop = asyncio.new_event_loop()",
    )
    assert all(entry["active"] for entry in report["layers"].values()), report["layers"]
    assert report["plain"] == {"ok": True, "value": [2, 5, 2024]}
    assert report["async"] == {"ok": True, "value": 41}
    assert_refused(report, "socket")


@needs_root
def test_root_switches_to_the_sandbox_user_after_its_imports():
    """Everything imported before apply() keeps working after the switch, even though the
    Python in use may live where the new user cannot read (here: under /root, mode 700)."""
    report = run_sandboxed(
        {"seccomp": False, "landlock": False, "user": "nobody"},
        """
        attempt("ids", lambda: [list(os.getresuid()), list(os.getresgid()), os.getgroups()])
        attempt("json", lambda: json.loads(json.dumps({"still": "works"})))
        attempt("stdlib", lambda: os.listdir(os.path.dirname(os.__file__)) and "readable")
        attempt("lazy_import", lambda: __import__("xml.dom.minidom") and "imported")
        attempt("setuid_back", lambda: os.setuid(0))
        """,
    )
    nobody = oslayers.resolve_user("nobody")
    assert nobody is not None
    uid, gid, name = nobody
    assert report["layers"]["user"] == {"active": True, "switched": True, "uid": uid, "gid": gid, "name": name}
    assert report["ids"]["value"] == [[uid] * 3, [gid] * 3, []]
    assert report["json"]["value"] == {"still": "works"}
    assert_refused(report, "setuid_back")
    if _unreadable_by_others(os.path.dirname(os.__file__)):
        # This machine's case: the standard library is under a root-only directory, so what
        # was not imported before the switch cannot be imported after it.
        assert report["stdlib"]["ok"] is False
        assert report["lazy_import"]["ok"] is False


def _unreadable_by_others(path: str) -> bool:
    """True if some directory on the way to ``path`` is not searchable by other users."""
    current = Path(path).resolve()
    for directory in [current, *current.parents]:
        if not os.stat(directory).st_mode & stat.S_IXOTH:
            return True
    return False


@needs_root
def test_unknown_user_is_reported_and_nothing_switches():
    report = run_sandboxed(
        {"seccomp": False, "landlock": False, "user": "no-such-user-oslayers"},
        'attempt("uid", os.geteuid)',
    )
    user = report["layers"]["user"]
    assert user["active"] is False and "no such user" in user["reason"]
    assert report["uid"]["value"] == 0


def test_disabled_layers_report_inactive_with_a_reason():
    report = run_sandboxed(ALL_OFF, 'attempt("uid", os.geteuid)')
    layers = report["layers"]
    assert layers["seccomp"]["active"] is False and "SANDBOX_SECCOMP" in layers["seccomp"]["reason"]
    assert layers["landlock"]["active"] is False and "SANDBOX_LANDLOCK" in layers["landlock"]["reason"]
    assert layers["no_new_privs"] == {"active": True}
    if IS_ROOT:
        assert layers["user"]["active"] is False and "None" in layers["user"]["reason"]
        assert report["uid"]["value"] == 0
    else:
        assert layers["user"]["active"] is True and layers["user"]["switched"] is False


@needs_seccomp
def test_missing_pyseccomp_is_reported_not_raised():
    report = run_sandboxed(
        {"seccomp": True, "landlock": False, "user": None},
        'attempt("socket", lambda: socket.socket().close())',
        imports="import socket",
        before='sys.modules["pyseccomp"] = None  # as if it were not installed',
    )
    assert report["layers"]["seccomp"]["active"] is False
    assert "pyseccomp is not installed" in report["layers"]["seccomp"]["reason"]
    assert report["socket"]["ok"] is True


@needs_landlock
def test_landlock_alone_makes_files_read_only_and_refuses_execution(shared_dir: Path):
    report = run_sandboxed(
        {"seccomp": False, "landlock": True, "user": None},
        """
        directory = sys.argv[2]
        attempt("write_new", lambda: open(os.path.join(directory, "new.txt"), "w").close())
        attempt("append", lambda: open(os.path.join(directory, "existing.txt"), "a").close())
        attempt("unlink", lambda: os.unlink(os.path.join(directory, "existing.txt")))
        attempt("exec", lambda: os.execv("/bin/true", ["true"]))
        attempt("read", lambda: open(os.path.join(directory, "existing.txt")).read())
        attempt("list", lambda: sorted(os.listdir(directory)))
        """,
        argv=(str(shared_dir),),
    )
    assert report["layers"]["landlock"]["active"] is True
    assert report["layers"]["landlock"]["abi"] == PROBE["landlock"]["abi"]
    for name in ("write_new", "append", "unlink", "exec"):
        assert_refused(report, name, errno.EACCES)  # Landlock's answer
    assert report["read"]["value"] == "before\n"
    assert report["list"]["value"] == ["existing.txt"]


@needs_seccomp
def test_seccomp_alone_refuses_writes_sockets_and_exec(shared_dir: Path):
    report = run_sandboxed(
        {"seccomp": True, "landlock": False, "user": None},
        """
        directory = sys.argv[2]
        attempt("write_new", lambda: open(os.path.join(directory, "new.txt"), "w").close())
        attempt("append", lambda: open(os.path.join(directory, "existing.txt"), "a").close())
        attempt("creat", lambda: os.close(os.open(os.path.join(directory, "c.txt"), os.O_CREAT | os.O_RDONLY)))
        attempt("socket", lambda: socket.socket().close())
        attempt("exec", lambda: os.execv("/bin/true", ["true"]))
        attempt("read", lambda: open(os.path.join(directory, "existing.txt")).read())
        """,
        imports="import socket",
        argv=(str(shared_dir),),
    )
    assert report["layers"]["seccomp"]["active"] is True
    for name in ("write_new", "append", "creat", "socket", "exec"):
        assert_refused(report, name)
    assert report["read"]["value"] == "before\n"
    assert sorted(p.name for p in shared_dir.iterdir()) == ["existing.txt"]


@needs_seccomp
@needs_landlock
def test_threads_started_before_apply_get_seccomp_but_landlock_is_skipped_and_said():
    report = run_sandboxed(
        {"seccomp": True, "landlock": True, "user": None},
        """
        go.set()
        earlier.join()
        report["earlier_thread_socket"] = outcome
        """,
        imports="import socket, threading",
        before="""
        go, outcome = threading.Event(), {}
        def try_socket():
            go.wait()
            try:
                socket.socket().close()
                outcome.update(ok=True)
            except OSError as exc:
                outcome.update(ok=False, errno=exc.errno)
        earlier = threading.Thread(target=try_socket)
        earlier.start()
        """,
    )
    landlock = report["layers"]["landlock"]
    assert landlock["active"] is False and "threads" in landlock["reason"]
    assert report["layers"]["seccomp"]["active"] is True
    assert report["earlier_thread_socket"] == {"ok": False, "errno": errno.EPERM}  # TSYNC


def test_probe_applies_nothing_to_the_calling_process():
    before = oslayers._status()
    report = oslayers.probe("nobody")
    after = oslayers._status()
    for field in ("NoNewPrivs", "Seccomp", "Uid", "Gid", "Groups"):
        assert after.get(field) == before.get(field), field
    assert set(report) == {"platform", "no_new_privs", "seccomp", "landlock", "user"}
    assert report["user"]["root"] is IS_ROOT
    if HAS_LANDLOCK:
        assert report["landlock"]["abi"] >= 1
    assert oslayers.probe("no-such-user-oslayers")["user"]["available"] is (not IS_ROOT)
    json.dumps(report)


# -- system checks W030/W031 ------------------------------------------------------------


def fake_probe(
    *, seccomp: bool = True, landlock: bool = True, nnp: bool = True, root: bool = False, user_ok: bool = True
) -> dict[str, Any]:
    def entry(ok: bool, reason: str) -> dict[str, Any]:
        return {"available": True} if ok else {"available": False, "reason": reason}

    return {
        "platform": "test",
        "no_new_privs": entry(nnp, "not Linux (test)"),
        "seccomp": entry(seccomp, "the Python package pyseccomp is not installed"),
        "landlock": entry(landlock, "Landlock is disabled at boot"),
        "user": {"root": root, **entry(user_ok, "no such user 'ghost'")},
    }


def ids(messages: list[django_checks.CheckMessage]) -> list[str]:
    return [m.id for m in messages]


def test_w030_for_each_enabled_layer_the_platform_cannot_apply(monkeypatch, settings):
    monkeypatch.setattr(oslayers, "probe", lambda user: fake_probe(seccomp=False, landlock=False))
    messages = checks_sandbox.check_os_layers()
    assert ids(messages) == ["plugins_app.W030", "plugins_app.W030"]
    assert "'seccomp'" in messages[0].msg and "pyseccomp is not installed" in messages[0].msg
    assert "libseccomp" in messages[0].hint
    assert "'landlock'" in messages[1].msg and "lsm=" in messages[1].hint
    # A layer turned off in the settings is a decision, not a warning.
    settings.PLUGINS_APP = {"SANDBOX_SECCOMP": False, "SANDBOX_LANDLOCK": False}
    assert checks_sandbox.check_os_layers() == []


def test_w030_for_a_missing_user_only_when_root(monkeypatch, settings):
    settings.PLUGINS_APP = {"SANDBOX_USER": "ghost"}
    monkeypatch.setattr(oslayers, "probe", lambda user: fake_probe(root=True, user_ok=False))
    messages = checks_sandbox.check_os_layers()
    assert ids(messages) == ["plugins_app.W030"] and "'user'" in messages[0].msg and "ghost" in messages[0].msg
    monkeypatch.setattr(oslayers, "probe", lambda user: fake_probe(root=False, user_ok=False))
    assert checks_sandbox.check_os_layers() == []


def test_w030_when_not_linux(monkeypatch):
    monkeypatch.setattr(oslayers, "probe", lambda user: fake_probe(seccomp=False, landlock=False, nnp=False))
    assert ids(checks_sandbox.check_os_layers()) == ["plugins_app.W030"] * 3


def test_w031_when_root_keeps_root(monkeypatch, settings):
    settings.PLUGINS_APP = {"SANDBOX_USER": None}
    monkeypatch.setattr(oslayers, "probe", lambda user: fake_probe(root=True))
    messages = checks_sandbox.check_os_layers()
    assert ids(messages) == ["plugins_app.W031"] and "root" in messages[0].msg
    monkeypatch.setattr(oslayers, "probe", lambda user: fake_probe(root=False))
    assert checks_sandbox.check_os_layers() == []


def test_check_is_registered_and_quiet_on_a_capable_platform():
    assert checks_sandbox.check_os_layers in django_checks.registry.registry.get_checks()
    if HAS_SECCOMP and HAS_LANDLOCK and PROBE["user"]["available"]:
        assert checks_sandbox.check_os_layers() == []
