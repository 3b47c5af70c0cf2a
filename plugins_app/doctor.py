"""What an operator needs to know about this installation, in one report: versions, the
OS layers a real sandbox process applied to itself, the sandbox pool and its limits.

:func:`report` is shared by ``manage.py plugins doctor`` (and, later, the admin);
:func:`text_lines` renders it for a terminal.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

import django

from . import __version__, conf
from .exceptions import PluginError
from .sandbox import oslayers

# In the order a sandbox applies them.
LAYERS = ("user", "no_new_privs", "landlock", "seccomp")
LIMIT_SETTINGS = (
    "WORKER_DATA_LIMIT_MB",
    "WORKER_RSS_LIMIT_MB",
    "DEFAULT_MEMORY_MB",
    "MAX_MEMORY_MB",
    "DEFAULT_TIMEOUT_MS",
    "MAX_TIMEOUT_MS",
    "RUNTIME_IDLE_SECONDS",
    "CHECKOUT_TIMEOUT_SECONDS",
)


def requested_layers() -> dict[str, bool]:
    """Which layers the settings ask for (no_new_privs: always)."""
    return {
        "user": conf.get("SANDBOX_USER") is not None,
        "no_new_privs": True,
        "landlock": bool(conf.get("SANDBOX_LANDLOCK")),
        "seccomp": bool(conf.get("SANDBOX_SECCOMP")),
    }


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _from_sandbox(start_worker: bool) -> tuple[dict[str, Any] | None, str | None]:
    """The layers report of a real sandbox process, starting one (idle, call-free) if
    none has started yet. ``(None, why)`` when no sandbox could tell; ``({}, why)`` when
    one started but reported no layers (it applied none)."""
    from .sandbox import pool as pool_module

    pool = pool_module.get_pool()
    layers_report = getattr(pool, "layers_report", None)
    if layers_report is None:
        return None, "this version of the sandbox pool does not report its layers"
    layers = layers_report()
    if not layers:
        if not start_worker:
            return None, "no sandbox process has started yet"
        checkout, checkin = getattr(pool, "checkout", None), getattr(pool, "checkin", None)
        if checkout is None or checkin is None:
            return None, "the sandbox pool cannot start a worker here"
        try:
            worker = checkout(None, float(conf.get("CHECKOUT_TIMEOUT_SECONDS")))
        except PluginError as exc:
            return None, f"could not start a sandbox process: {exc}"
        checkin(worker, True)
        layers = layers_report()
    if not layers:
        return {}, "the sandbox process reported no layers"
    return layers, None


def _from_probe(probe: dict[str, Any]) -> dict[str, Any]:
    """A layers report predicted from :func:`oslayers.probe` (nothing was applied)."""
    wanted = requested_layers()
    layers: dict[str, Any] = {}
    for layer in LAYERS:
        entry = dict(probe.get(layer) or {})
        available = bool(entry.pop("available", False))
        reason = entry.pop("reason", None)
        if layer == "user" and entry.get("root") and not wanted["user"]:
            available, reason = False, "SANDBOX_USER is None: the sandbox keeps running as root"
        elif layer in ("landlock", "seccomp") and not wanted[layer]:
            available, reason = False, f"disabled (SANDBOX_{layer.upper()} is False)"
        layers[layer] = {"active": available, **({"reason": reason} if reason else {}), **entry}
    return layers


def _pool_state() -> dict[str, Any]:
    from .sandbox import pool as pool_module

    pool = pool_module.get_pool()
    state_fn = getattr(pool, "state", None)
    if state_fn is not None:
        state = dict(state_fn())
    else:
        state = {"size": getattr(pool, "size", conf.get("POOL_SIZE")), "idle": list(pool.worker_pids())}
    state["POOL_SIZE"] = conf.get("POOL_SIZE")
    state["WARM_RUNTIMES_PER_WORKER"] = conf.warm_runtimes_per_worker()
    state["limits"] = {name: conf.get(name) for name in LIMIT_SETTINGS}
    return state


def report(*, start_worker: bool = True) -> dict[str, Any]:
    """Versions, OS layers, pool. ``layers`` comes from a real sandbox process when the
    pool can tell (``layers_source`` "sandbox"), else from a probe of the platform
    ("probe"). ``inactive`` maps every inactive layer to its reason; ``missing`` lists
    the requested layers among them (what ``--strict`` fails on)."""
    probe = oslayers.probe(conf.get("SANDBOX_USER"))
    reported, why_not = _from_sandbox(start_worker)
    if reported is None:
        layers, source = _from_probe(probe), "probe"
    else:
        layers, source = dict(reported), "sandbox"
    for layer in LAYERS:
        layers.setdefault(layer, {"active": False, "reason": "not reported by the sandbox process"})
    wanted = requested_layers()
    inactive = {
        layer: str(layers[layer].get("reason") or "no reason given")
        for layer in LAYERS
        if not layers[layer].get("active")
    }
    return {
        "versions": {
            "plugins_app": __version__,
            "python": platform.python_version(),
            "django": django.get_version(),
            "jsrun": _version("jsrun"),
            "pyseccomp": _version("pyseccomp"),
            "libseccomp": (probe.get("seccomp") or {}).get("libseccomp"),
        },
        "platform": probe.get("platform"),
        "settings": {name: conf.get(name) for name in ("SANDBOX_SECCOMP", "SANDBOX_LANDLOCK", "SANDBOX_USER")},
        "layers_source": source,
        "layers_note": why_not,
        "layers": layers,
        "inactive": inactive,
        "missing": [layer for layer in inactive if wanted[layer]],
        "warnings": [f"{layer} not active: {reason}" for layer, reason in inactive.items()],
        "pool": _pool_state(),
    }


def _describe(layer: str, entry: dict[str, Any], predicted: bool) -> str:
    if not entry.get("active"):
        state = "UNAVAILABLE" if predicted else "INACTIVE"
        return f"{state:<11} {entry.get('reason') or 'no reason given'}"
    details = ""
    if layer == "user":
        if entry.get("switched") or "name" in entry:
            details = f"uid {entry.get('uid')} ({entry.get('name', '?')}), gid {entry.get('gid')}"
        else:
            details = f"uid {entry.get('uid')} ({entry.get('note') or 'not root'})"
    elif layer == "landlock":
        details = f"ABI {entry.get('abi')}"
        if entry.get("files"):
            details += f"; files {entry['files']}"
    elif layer == "seccomp" and "refused" in entry:
        details = f"{entry['refused']} system calls restricted"
    return f"{'available' if predicted else 'active':<11} {details}".rstrip()


def text_lines(data: dict[str, Any]) -> list[str]:
    v = data["versions"]
    lines = [
        f"plugins_app {v.get('plugins_app')}, Python {v['python']}, Django {v['django']}, jsrun {v['jsrun'] or 'NOT INSTALLED'}, "
        f"pyseccomp {v['pyseccomp'] or 'not installed'}, libseccomp {v['libseccomp'] or 'not found'}",
        f"Platform: {data['platform']}",
    ]
    predicted = data["layers_source"] == "probe"
    if predicted:
        lines.append(f"OS layers (predicted by probing this platform: {data['layers_note']}):")
    else:
        note = f"; {data['layers_note']}" if data["layers_note"] else ""
        lines.append(f"OS layers (as reported by a sandbox process{note}):")
    for layer in LAYERS:
        lines.append(f"  {layer:<13} {_describe(layer, data['layers'][layer], predicted)}")
    pool = data["pool"]
    idle = pool.get("idle") or []
    busy = pool.get("busy")
    workers = f"started {pool['started']}, " if "started" in pool else ""
    lines.append(
        f"Pool: POOL_SIZE {pool['POOL_SIZE']}, {workers}idle {len(idle)}"
        + (f" (pids {', '.join(map(str, idle))})" if idle else "")
        + (f", busy {len(busy)}" + (f" (pids {', '.join(map(str, busy))})" if busy else "") if busy is not None else "")
        + f"; WARM_RUNTIMES_PER_WORKER {pool['WARM_RUNTIMES_PER_WORKER']}"
    )
    lines.append("Limits: " + ", ".join(f"{name} {value}" for name, value in pool["limits"].items()))
    lines.extend(f"WARNING: {warning}" for warning in data["warnings"])
    return lines
