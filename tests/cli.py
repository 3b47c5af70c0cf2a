"""Running `manage.py plugins` in tests, as operators' scripts see it."""

from __future__ import annotations

import io

from django.core.management import call_command


def run(*args: str) -> tuple[int, str, str]:
    """Run ``manage.py plugins *args``; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("plugins", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()
