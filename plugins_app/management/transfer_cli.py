"""The export/import subcommands of ``manage.py plugins`` (the logic is
:mod:`plugins_app.transfer`): ``export SLUG... [-o FILE]`` and ``import FILE [--replace]
[--enable]``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from plugins_app import revisions, transfer
from plugins_app.management.output import write_output
from plugins_app.models import Plugin


def add_transfer_arguments(sub: Any) -> None:
    """Add ``export`` and ``import`` to the ``plugins`` subparsers."""
    export_help = (
        "Write plugins (source, configuration and schema, limits, priority, HTTP setting, grants, "
        "metadata) as one JSON file, to stdout or -o FILE. Import it here or on another site with "
        "`plugins import`, or from the admin's plugin list (Import)."
    )
    export = sub.add_parser("export", help=export_help, description=export_help)
    export.add_argument("slugs", nargs="+", metavar="SLUG")
    export.add_argument("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")

    import_help = (
        "Install the plugins of an export file (FILE, or - for stdin). Each is validated like a save "
        "(sizes, limits, configuration schema, a trial load of the source); nothing is saved unless all "
        "pass (errors on stderr, exit 1). New plugins are installed disabled unless --enable. Grants on "
        "models or fields this site does not expose are left out and listed on stderr (exit 0)."
    )
    importing = sub.add_parser("import", help=import_help, description=import_help)
    importing.add_argument("file", metavar="FILE")
    importing.add_argument(
        "--replace",
        action="store_true",
        help="Update plugins whose slug is installed (keeping their storage, enabled state and breaker "
        "state; grants are replaced). Without it such a file is refused.",
    )
    importing.add_argument("--enable", action="store_true", help="Enable the imported plugins.")
    importing.add_argument("--comment", default="", metavar="TEXT", help="Kept with the revision each import records.")


class TransferCommands:
    """``do_export`` and ``do_import`` for the ``plugins`` command."""

    stdout: Any
    stderr: Any

    def do_export(self, options: dict[str, Any]) -> None:
        slugs = list(dict.fromkeys(options["slugs"]))
        plugins = {p.slug: p for p in Plugin.objects.filter(slug__in=slugs)}
        missing = [s for s in slugs if s not in plugins]
        if missing:
            raise CommandError(f"no plugin {', '.join(repr(s) for s in missing)} is installed")
        text = transfer.export_json([plugins[s] for s in slugs], exported_by=revisions.shell_user_name())
        write_output(self.stdout, text, options["output"], f"Exported {', '.join(slugs)}")

    def do_import(self, options: dict[str, Any]) -> None:
        name = options["file"]
        try:
            data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {name}: {exc}") from None
        try:
            reports = transfer.import_plugins(
                data,
                replace=options["replace"],
                enable=options["enable"],
                origin="cli",
                name=revisions.shell_user_name(),
                comment=options["comment"] or f"Imported from {'stdin' if name == '-' else Path(name).name}.",
            )
        except transfer.PluginImportError as exc:
            for error in exc.errors:
                self.stderr.write(error)
            self.stderr.write("Nothing was imported.")
            sys.exit(1)
        for report in reports:
            self.stdout.write(str(report))
            for skipped in report.skipped_grants:
                self.stderr.write(f"{report.plugin.slug}: grant {skipped}")
