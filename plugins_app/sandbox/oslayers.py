"""OS layers of a sandbox process: an unprivileged user, no-new-privs, Landlock, seccomp.

Runs inside the sandbox worker, where Django is not importable: this module imports only
the standard library (and ``pyseccomp``, lazily, inside :func:`apply`/:func:`probe`).

``apply(options)`` hardens the calling process, in this order:

1. **user**: when running as root, drop supplementary groups and switch gid and uid to
   ``options["user"]`` (name or uid; ``None`` keeps root); the process then has no
   capabilities left. Must come after the worker's imports: the Python in use may live in
   a directory the new user cannot read.
2. **no_new_privs** (``PR_SET_NO_NEW_PRIVS``): always; needed by the next two.
3. **landlock**: files read-only everywhere (no writing, creating, removing, renaming,
   linking, truncating, device ioctls, nor executing files), no TCP bind/connect
   (ABI >= 4), no signals or abstract unix sockets out of the sandbox (ABI >= 6).
4. **seccomp** last (libseccomp through ``pyseccomp``): a deny list, default allow.
   Refused with ``EPERM``: ``socket`` (any family), ``socketpair`` other than AF_UNIX,
   ``execve``/``execveat``, ``fork``/``vfork`` and ``clone`` without ``CLONE_THREAD`` or
   with namespace flags, ``ptrace``/``process_vm_*``/``pidfd_getfd``, mounts, ``chroot``,
   ``unshare``/``setns``, ``open``/``openat`` with ``O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND``,
   ``creat``, renames, unlinks, mkdir, links, chmod/chown, xattrs, io_uring, bpf, keyrings,
   modules...; signals to other processes. Refused with ``ENOSYS`` (their arguments are
   in memory a filter cannot read, and libc then falls back to ``clone``/``openat``,
   which the filter does check): ``clone3``, ``openat2``. See :data:`REFUSED`.

It returns a JSON-able report, one entry per layer, e.g.::

    {"user": {"active": True, "switched": True, "uid": 65534, "gid": 65534, "name": "nobody"},
     "no_new_privs": {"active": True},
     "landlock": {"active": True, "abi": 7, "files": "...", "tcp": "...", "scoped": "..."},
     "seccomp": {"active": True, "refused": 106}}

A layer that is disabled or that the platform cannot apply has ``"active": False`` and a
``"reason"``; ``apply`` never raises for that. It raises :class:`LayerError` only when a
requested layer was half-applied and the process is in a state nobody planned for.

What the caller must know:
- Import everything before ``apply``: after the switch to another user the Python
  standard library may be unreadable (e.g. under ``/root/.pyenv``), so a lazy import
  fails. ``apply`` imports what it needs itself, and :data:`PRELOAD`.
- Start no thread before ``apply``: Landlock (ABI < 8) restricts only the calling thread
  and the threads it starts later, so ``apply`` skips Landlock (and says why) when the
  process already has other threads. Seccomp covers every thread (``TSYNC``).
- Afterwards the process cannot open files for writing, start programs or processes, or
  open sockets; AF_UNIX ``socketpair()`` stays allowed because asyncio's event loop and
  tokio (inside jsrun) make their wake-up channels with it.

``probe(user)`` reports what this platform offers without applying anything to the
calling process; the Django process uses it for system check W030 and ``plugins doctor``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import pwd
import sys
import types
from typing import Any

# -- constants -------------------------------------------------------------------------

PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39

# Landlock system calls have the same number on every architecture Linux added them on.
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_RESTRICT_SELF_TSYNC = 1 << 3  # ABI 8: restrict every thread, not only the caller

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

# What the sandbox may do on the file system: read files and list directories. Every
# other handled right (write, create, remove, rename across directories, truncate,
# device ioctl, execute) is refused.
LANDLOCK_ALLOWED_FS = FS_READ_FILE | FS_READ_DIR

# Open flags that mean "this file may be changed" (masked comparisons on the flags
# argument; O_TMPFILE needs O_WRONLY or O_RDWR, so it is covered too).
WRITE_OPEN_FLAGS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC, os.O_APPEND)

AF_UNIX = 1
# clone() flags: threads share the process (CLONE_THREAD); the others create namespaces.
CLONE_THREAD = 0x00010000
CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)

# System calls refused outright with EPERM, by concern. Names this architecture lacks
# (open, rename... on aarch64) are ignored by libseccomp.
REFUSED: dict[str, tuple[str, ...]] = {
    "network": ("socket",),
    "new processes": ("execve", "execveat", "fork", "vfork"),
    "other processes": (
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "pidfd_getfd",
        "kcmp",
        "move_pages",
        "migrate_pages",
        "tkill",
    ),
    "mounts and namespaces": (
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "unshare",
        "setns",
        "open_tree",
        "move_mount",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "mount_setattr",
        "open_tree_attr",
    ),
    "file changes": (
        "creat",
        "rename",
        "renameat",
        "renameat2",
        "unlink",
        "unlinkat",
        "rmdir",
        "mkdir",
        "mkdirat",
        "mknod",
        "mknodat",
        "link",
        "linkat",
        "symlink",
        "symlinkat",
        "chmod",
        "fchmod",
        "fchmodat",
        "fchmodat2",
        "chown",
        "fchown",
        "lchown",
        "fchownat",
        "truncate",
        "utime",
        "utimes",
        "utimensat",
        "futimesat",
        "setxattr",
        "lsetxattr",
        "fsetxattr",
        "setxattrat",
        "removexattr",
        "lremovexattr",
        "fremovexattr",
        "removexattrat",
        "name_to_handle_at",
        "open_by_handle_at",
    ),
    "kernel interfaces": (
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "keyctl",
        "add_key",
        "request_key",
        "fanotify_init",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "reboot",
        "swapon",
        "swapoff",
        "acct",
        "quotactl",
        "quotactl_fd",
        "syslog",
        "sethostname",
        "setdomainname",
        "settimeofday",
        "clock_settime",
        "clock_adjtime",
        "iopl",
        "ioperm",
        "vhangup",
    ),
}
# Refused with ENOSYS: their arguments live in memory a filter cannot read, and libc
# falls back to the older call (clone, openat) that the filter does check.
REFUSED_ENOSYS = ("clone3", "openat2")
# Signals: only to this process (first argument == our pid).
OWN_PID_ONLY = ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open")

# Numbers of recent system calls older libseccomp releases cannot name. Since Linux 5.1
# (pidfd_send_signal, 424) new system calls have one number on every architecture.
UNIFIED_SYSCALLS = {
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "pidfd_open": 434,
    "clone3": 435,
    "openat2": 437,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
    "quotactl_fd": 443,
    "fchmodat2": 452,
    "setxattrat": 463,
    "removexattrat": 466,
    "open_tree_attr": 467,
}


# Modules that code running in the sandbox imports lazily, imported by apply() before the
# user switch (after it, the standard library may be unreadable): jsrun (pyo3) imports
# datetime the first time a JS Date crosses to Python (measured: the process aborts if it
# cannot).
PRELOAD = ("datetime",)


class LayerError(RuntimeError):
    """A requested layer was only partly applied: the process must not run plugin code."""


# -- small helpers ---------------------------------------------------------------------

_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        libc.prctl.restype = ctypes.c_int
        libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        _LIBC = libc
    return _LIBC


def _errno_text(number: int) -> str:
    return f"{errno.errorcode.get(number, number)} ({os.strerror(number)})"


def _status() -> dict[str, str]:
    """Fields of /proc/self/status (the kernel's own view of this process)."""
    fields: dict[str, str] = {}
    for line in (_read("/proc/self/status") or "").splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _read(path: str) -> str | None:
    """Text of a small file. Binary read + bytes.decode: an ``encoding=`` argument would
    import a codec module lazily, which may be impossible after the user switch."""
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return None


def _linux_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"not Linux ({sys.platform})"
    return None


def landlock_abi() -> tuple[int, str | None]:
    """The kernel's Landlock ABI version, or (0, why it is unavailable)."""
    if (reason := _linux_reason()) is not None:
        return 0, reason
    libc = _libc()
    abi = libc.syscall(
        ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET),
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint(LANDLOCK_CREATE_RULESET_VERSION),
    )
    if abi >= 1:
        return int(abi), None
    err = ctypes.get_errno()
    if err == errno.ENOSYS:
        return 0, "the kernel has no Landlock (ENOSYS: built without it, or blocked by a container's seccomp profile)"
    if err == errno.EOPNOTSUPP:
        return 0, "Landlock is disabled at boot (add landlock to the kernel's lsm= parameter)"
    return 0, f"landlock_create_ruleset failed: {_errno_text(err)}"


def import_pyseccomp() -> tuple[Any, str | None]:
    """``(module, None)``, or ``(None, why libseccomp cannot be used)``."""
    if (reason := _linux_reason()) is not None:
        return None, reason
    try:
        pyseccomp = _import_quickly("pyseccomp")
    except ImportError:
        return None, "the Python package pyseccomp is not installed (pip install pyseccomp)"
    except (OSError, RuntimeError) as exc:
        return None, f"libseccomp could not be loaded: {exc} (install libseccomp2)"
    return pyseccomp, None


# Importing pyseccomp looks its libraries up with ctypes.util.find_library, which runs
# `ldconfig -p` twice (subprocesses), and ctypes.util itself imports shutil, tempfile,
# random...: ~9 ms of a worker's start, most of what the seccomp layer costs. The usual
# sonames are tried with dlopen first, and in a process that has not imported ctypes.util
# (a sandbox) a small stand-in is used for the duration of the import.
_SONAMES = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}


def _import_quickly(module: str) -> Any:
    if sys.modules.get(module) is not None:
        return sys.modules[module]
    util = sys.modules.get("ctypes.util")
    stand_in = None
    if util is None:
        stand_in = types.ModuleType("ctypes.util")
        sys.modules["ctypes.util"] = ctypes.util = stand_in
    original = getattr(util, "find_library", None)
    real = original

    def find_library(name: str) -> str | None:
        nonlocal real
        soname = _SONAMES.get(name)
        if soname is not None:
            try:
                ctypes.CDLL(soname)
                return soname
            except OSError:
                pass
        if real is None:  # the stand-in is not enough: bring the real module in
            _drop_stand_in(stand_in)
            import ctypes.util as real_util

            real = real_util.find_library
        return real(name)

    (util or stand_in).find_library = find_library  # type: ignore[union-attr]  # one of them is a module
    try:
        return __import__(module)
    finally:
        if util is not None:
            util.find_library = original  # type: ignore[attr-defined]  # the real ctypes.util's
        _drop_stand_in(stand_in)


def _drop_stand_in(stand_in: Any) -> None:
    if stand_in is not None and sys.modules.get("ctypes.util") is stand_in:
        del sys.modules["ctypes.util"]
        del ctypes.util


def resolve_user(user: str | int | None) -> tuple[int, int, str] | None:
    """(uid, gid, name) of ``user``, a name or a uid; None if no such user."""
    if user is None:
        return None
    if isinstance(user, int) or (isinstance(user, str) and user.isdigit()):
        uid = int(user)
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return (uid, uid, str(uid)) if uid > 0 else None  # a bare uid: gid = uid
        return entry.pw_uid, entry.pw_gid, entry.pw_name
    try:
        entry = pwd.getpwnam(str(user))
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid, entry.pw_name


def _inactive(reason: str, **extra: Any) -> dict[str, Any]:
    return {"active": False, "reason": reason, **extra}


# -- the layers ------------------------------------------------------------------------


def _switch_user(user: str | int | None) -> dict[str, Any]:
    if (reason := _linux_reason()) is not None:
        return _inactive(reason)
    euid = os.geteuid()
    if euid != 0:
        # Already unprivileged: nothing to switch, and nothing a switch would add.
        return {
            "active": True,
            "switched": False,
            "uid": euid,
            "gid": os.getegid(),
            "note": "not root: kept the current user",
        }
    if user is None:
        return _inactive("SANDBOX_USER is None: the sandbox keeps running as root")
    target = resolve_user(user)
    if target is None:
        return _inactive(f"no such user {user!r}: the sandbox keeps running as root")
    uid, gid, name = target
    if uid == 0:
        return _inactive(f"SANDBOX_USER {user!r} is root")
    try:
        os.setgroups([])
    except OSError as exc:  # nothing changed yet (e.g. no CAP_SETGID in this container)
        return _inactive(f"setgroups failed: {exc}: the sandbox keeps running as root")
    try:
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        raise LayerError(f"switching to user {name!r} failed half way: {exc}") from exc
    status = _status()
    caps = {key: status.get(key, "") for key in ("CapInh", "CapPrm", "CapEff", "CapAmb")}
    if (
        os.getresuid() != (uid, uid, uid)
        or os.getresgid() != (gid, gid, gid)
        or os.getgroups() not in ([], [gid])
        or any(value.strip("0") for value in caps.values())
    ):
        raise LayerError(f"after switching to {name!r}: uids {os.getresuid()}, gids {os.getresgid()}, caps {caps}")
    return {"active": True, "switched": True, "uid": uid, "gid": gid, "name": name}


def _no_new_privs() -> dict[str, Any]:
    if (reason := _linux_reason()) is not None:
        return _inactive(reason)
    libc = _libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return _inactive(f"prctl(PR_SET_NO_NEW_PRIVS) failed: {_errno_text(ctypes.get_errno())}")
    if libc.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1:
        raise LayerError("PR_SET_NO_NEW_PRIVS succeeded but the flag is not set")
    return {"active": True}


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in the kernel's header
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_rights(abi: int) -> tuple[int, int, int]:
    """(handled fs rights, handled net rights, scopes) that ABI ``abi`` knows."""
    fs = (1 << 13) - 1  # ABI 1: EXECUTE .. MAKE_SYM
    if abi >= 2:
        fs |= FS_REFER
    if abi >= 3:
        fs |= FS_TRUNCATE
    if abi >= 5:
        fs |= FS_IOCTL_DEV
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    return fs, net, scoped


def _landlock() -> dict[str, Any]:
    abi, reason = landlock_abi()
    if not abi:
        return _inactive(reason or "unavailable")
    threads = int(_status().get("Threads", "1") or 1)
    restrict_flags = LANDLOCK_RESTRICT_SELF_TSYNC if abi >= 8 else 0
    if threads > 1 and not restrict_flags:
        return _inactive(
            f"the process already runs {threads} threads and Landlock ABI {abi} restricts only the calling "
            "thread: apply the layers before starting threads",
            abi=abi,
        )
    fs, net, scoped = landlock_rights(abi)
    attr = _RulesetAttr(fs, net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    libc = _libc()
    ruleset = libc.syscall(
        ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint(0)
    )
    if ruleset < 0:
        return _inactive(f"landlock_create_ruleset failed: {_errno_text(ctypes.get_errno())}", abi=abi)
    try:
        root = os.open("/", os.O_PATH | os.O_CLOEXEC)
        try:
            rule = _PathBeneathAttr(LANDLOCK_ALLOWED_FS & fs, root)
            if (
                libc.syscall(
                    ctypes.c_long(SYS_LANDLOCK_ADD_RULE),
                    ctypes.c_int(ruleset),
                    ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                    ctypes.byref(rule),
                    ctypes.c_uint(0),
                )
                != 0
            ):
                return _inactive(f"landlock_add_rule failed: {_errno_text(ctypes.get_errno())}", abi=abi)
        finally:
            os.close(root)
        if (
            libc.syscall(
                ctypes.c_long(SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint(restrict_flags)
            )
            != 0
        ):
            return _inactive(f"landlock_restrict_self failed: {_errno_text(ctypes.get_errno())}", abi=abi)
    finally:
        os.close(ruleset)
    report: dict[str, Any] = {"active": True, "abi": abi, "files": "read-only, no execution"}
    if net:
        report["tcp"] = "no bind, no connect"
    if scoped:
        report["scoped"] = "signals and abstract unix sockets stay inside the sandbox"
    return report


def _syscall_number(seccomp: Any, name: str) -> int | None:
    number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
    if number == -1:  # __NR_SCMP_ERROR: this libseccomp does not know the name
        return UNIFIED_SYSCALLS.get(name)
    return int(number)


def build_filter(seccomp: Any) -> tuple[Any, int, list[str]]:
    """The seccomp filter (not loaded), how many system calls it restricts, and the
    names this libseccomp could not resolve."""
    f = seccomp.SyscallFilter(seccomp.ALLOW)
    f.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)  # 32-bit/x32 system calls
    f.set_attr(seccomp.Attr.CTL_TSYNC, 1)  # every thread of the process, not only this one
    eperm, enosys = seccomp.ERRNO(errno.EPERM), seccomp.ERRNO(errno.ENOSYS)
    count, unknown = 0, []

    def number(name: str) -> int | None:
        n = _syscall_number(seccomp, name)
        if n is None:
            unknown.append(name)
        return n

    for names in REFUSED.values():
        for name in names:
            if (n := number(name)) is not None:
                f.add_rule(eperm, n)
                count += 1
    for name in REFUSED_ENOSYS:
        if (n := number(name)) is not None:
            f.add_rule(enosys, n)
            count += 1
    # open(path, flags, mode) and openat(dirfd, path, flags, mode): refused when the flags
    # ask for writing, creating, truncating or appending (one rule per flag: rules OR).
    for name, flags_arg in (("open", 1), ("openat", 2)):
        if (n := number(name)) is not None:
            for flag in WRITE_OPEN_FLAGS:
                f.add_rule(eperm, n, seccomp.Arg(flags_arg, seccomp.MASKED_EQ, flag, flag))
            count += 1
    # socketpair(domain, ...): only AF_UNIX pairs, which reach nothing outside this
    # process. Needed: tokio (inside jsrun) and asyncio's event loop make their wake-up
    # channels with socketpair().
    if (n := number("socketpair")) is not None:
        f.add_rule(eperm, n, seccomp.Arg(0, seccomp.NE, AF_UNIX))
        count += 1
    # clone(flags, ...) (flags first on x86_64 and arm64): threads only (CLONE_THREAD set),
    # and no new namespaces.
    if os.uname().machine in ("x86_64", "aarch64", "arm64"):
        if (n := number("clone")) is not None:
            f.add_rule(eperm, n, seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_THREAD, 0))
            for flag in CLONE_NAMESPACE_FLAGS:
                f.add_rule(eperm, n, seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
            count += 1
    pid = os.getpid()
    for name in OWN_PID_ONLY:
        if (n := number(name)) is not None:
            f.add_rule(eperm, n, seccomp.Arg(0, seccomp.NE, pid))
            count += 1
    return f, count, unknown


def _seccomp(seccomp: Any) -> dict[str, Any]:
    try:
        f, count, unknown = build_filter(seccomp)
    except OSError as exc:
        return _inactive(f"building the seccomp filter failed: {exc}")
    try:
        f.load()
    except OSError as exc:
        return _inactive(f"loading the seccomp filter failed: {exc}")
    if _status().get("Seccomp") != "2":
        raise LayerError("the seccomp filter was loaded but the kernel does not report filter mode")
    report: dict[str, Any] = {"active": True, "refused": count}
    if unknown:
        report["unknown"] = unknown
    return report


# -- public API ------------------------------------------------------------------------


def apply(options: dict[str, Any]) -> dict[str, Any]:
    """Apply the OS layers to this process; return what is active (see the module doc).

    ``options``: ``{"seccomp": bool, "landlock": bool, "user": name | uid | None}``
    (missing keys: seccomp and Landlock on, user "nobody"); optional ``"preload"``: more
    module names to import before the user switch (in addition to :data:`PRELOAD`).
    """
    want_seccomp = bool(options.get("seccomp", True))
    want_landlock = bool(options.get("landlock", True))
    user = options.get("user", "nobody")
    # Everything this function needs is imported and loaded before the user switch.
    seccomp, seccomp_reason = import_pyseccomp() if want_seccomp else (None, "disabled (SANDBOX_SECCOMP is False)")
    for name in (*PRELOAD, *options.get("preload", ())):
        __import__(name)
    if _linux_reason() is None:
        _libc()
    report: dict[str, Any] = {}
    report["user"] = _switch_user(user)
    report["no_new_privs"] = _no_new_privs()
    report["landlock"] = _landlock() if want_landlock else _inactive("disabled (SANDBOX_LANDLOCK is False)")
    report["seccomp"] = _inactive(seccomp_reason or "unavailable") if seccomp is None else _seccomp(seccomp)
    return report


def probe(user: str | int | None = "nobody") -> dict[str, Any]:
    """What this platform can offer, without applying anything to the calling process.

    ``{"platform": ..., "no_new_privs": {"available": bool}, "seccomp": {"available": bool,
    "libseccomp": "2.5.4"}, "landlock": {"available": bool, "abi": 7}, "user": {"available":
    bool, "root": bool, ...}}``; an unavailable entry has a ``"reason"``.
    """
    uname = os.uname()
    report: dict[str, Any] = {"platform": f"{sys.platform} {uname.machine} {uname.release}"}
    linux_reason = _linux_reason()
    report["no_new_privs"] = {"available": linux_reason is None}
    if linux_reason is not None:
        report["no_new_privs"]["reason"] = linux_reason
    elif _libc().prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) < 0:
        report["no_new_privs"] = {"available": False, "reason": f"prctl: {_errno_text(ctypes.get_errno())}"}

    seccomp, reason = import_pyseccomp()
    if seccomp is not None:
        actions = _read("/proc/sys/kernel/seccomp/actions_avail")
        if actions is None or "errno" not in actions.split():
            reason = "the kernel has no seccomp filters (no /proc/sys/kernel/seccomp/actions_avail with errno)"
    entry: dict[str, Any] = {"available": reason is None}
    if reason is not None:
        entry["reason"] = reason
    if seccomp is not None:
        entry["libseccomp"] = _libseccomp_version()
    report["seccomp"] = entry

    abi, reason = landlock_abi()
    report["landlock"] = {"available": bool(abi), "abi": abi} if abi else {"available": False, "reason": reason}

    root = linux_reason is None and os.geteuid() == 0
    user_entry: dict[str, Any] = {"root": root, "configured": user}
    if linux_reason is not None:
        user_entry.update(available=False, reason=linux_reason)
    elif not root:
        user_entry.update(available=True, uid=os.geteuid(), note="not root: sandboxes keep this user")
    elif user is None:
        user_entry.update(available=False, reason="SANDBOX_USER is None: sandboxes would run as root")
    else:
        target = resolve_user(user)
        if target is None:
            user_entry.update(available=False, reason=f"no such user {user!r}")
        elif target[0] == 0:
            user_entry.update(available=False, reason=f"SANDBOX_USER {user!r} is root")
        else:
            user_entry.update(available=True, uid=target[0], gid=target[1], name=target[2])
    report["user"] = user_entry
    return report


def _libseccomp_version() -> str | None:
    class Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    try:
        lib = ctypes.CDLL("libseccomp.so.2")
        lib.seccomp_version.restype = ctypes.POINTER(Version)
        v = lib.seccomp_version().contents
    except (OSError, AttributeError, ValueError):
        return None
    return f"{v.major}.{v.minor}.{v.micro}"
