"""System checks of the sandbox's OS layers (ids plugins_app.W030, plugins_app.W031).

The layers themselves are applied by every sandbox process (``sandbox/oslayers.py``);
here the Django process asks the platform, without applying anything, whether the
layers the settings ask for can be applied, so that a missing one is said out loud at
start-up instead of being found in a sandbox's report. (The sandbox's capacity is E006,
in checks.py.)
"""

from __future__ import annotations

from typing import Any

from django.core import checks

from . import conf
from .sandbox import oslayers

HINTS = {
    "no_new_privs": "Sandbox processes need Linux for their OS layers.",
    "seccomp": (
        "Install libseccomp (Debian/Ubuntu: apt-get install libseccomp2) and the Python package "
        "pyseccomp, or set PLUGINS_APP['SANDBOX_SECCOMP'] = False to run without the filter knowingly."
    ),
    "landlock": (
        "Landlock needs Linux 5.13 or newer with 'landlock' in the kernel's lsm= boot parameter "
        "(and, in a container, a seccomp profile that allows the landlock_* system calls); or set "
        "PLUGINS_APP['SANDBOX_LANDLOCK'] = False to run without it knowingly."
    ),
    "user": (
        "Set PLUGINS_APP['SANDBOX_USER'] to an existing unprivileged user (a name or a uid), "
        "e.g. 'nobody', or create that user."
    ),
}


@checks.register()
def check_os_layers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    user = conf.get("SANDBOX_USER")
    probe = oslayers.probe(user)
    wanted = {
        "no_new_privs": True,
        "seccomp": bool(conf.get("SANDBOX_SECCOMP")),
        "landlock": bool(conf.get("SANDBOX_LANDLOCK")),
        # Switching user is asked for, and possible, only when the process runs as root.
        "user": user is not None and bool(probe["user"].get("root")),
    }
    messages: list[checks.CheckMessage] = []
    for layer, enabled in wanted.items():
        entry = probe.get(layer) or {}
        if enabled and not entry.get("available"):
            messages.append(
                checks.Warning(
                    f"Sandbox OS layer {layer!r} is enabled but cannot be applied on this platform: "
                    f"{entry.get('reason') or 'unavailable'}. Sandboxes will run without it.",
                    hint=HINTS[layer],
                    id="plugins_app.W030",
                )
            )
    if user is None and probe["user"].get("root"):
        messages.append(
            checks.Warning(
                "PLUGINS_APP['SANDBOX_USER'] is None while Django runs as root: sandbox processes "
                "will run plugin code as root.",
                hint="Set SANDBOX_USER to an unprivileged user such as 'nobody', or run Django as a non-root user.",
                id="plugins_app.W031",
            )
        )
    return messages
