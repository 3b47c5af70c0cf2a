"""Where a ``plugins`` subcommand's text goes: a file given with ``-o``, or stdout."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError, OutputWrapper


def write_output(stdout: OutputWrapper, text: str, output: str | None, written: str) -> None:
    """Write ``text`` to the file ``output`` (then say ``written`` plus the path) or, when
    ``output`` is empty, to ``stdout`` as it is. An unwritable file is a ``CommandError``."""
    if not output:
        stdout.write(text, ending="")
        return
    path = Path(output)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc}") from None
    stdout.write(f"{written} to {path}")
