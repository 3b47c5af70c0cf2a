"""The revision subcommands of ``manage.py plugins``: ``revisions`` (list a plugin's
revisions) and ``rollback``; the ``--comment`` and ``--if-revision`` options of ``install``;
and :func:`cli_recording`, which attributes what the command saves to the shell user."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import AbstractContextManager
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from plugins_app import revisions
from plugins_app.exceptions import PluginConflict
from plugins_app.host_api.log import log_safe
from plugins_app.management.argtypes import positive_int
from plugins_app.models import Plugin, PluginRevision

CLI = PluginRevision.Origin.CLI
COMMENT_COLUMN_CHARS = 80


def revision_number(text: str) -> int:
    """A revision number, 0 or more (0: "no revision", e.g. not installed yet)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a revision number: {text!r}")
    return value


def cli_recording(comment: str = "") -> AbstractContextManager[revisions.Recording]:
    """Attribute the revisions recorded inside the block to the command line and the shell
    user; each save records its revision at once, in its own transaction."""
    return revisions.recording(origin=CLI, name=revisions.shell_user_name(), comment=comment, defer=False)


def add_install_revision_arguments(install: Any) -> None:
    install.add_argument(
        "--comment", default="", metavar="TEXT", help="Why: kept with the revision this install records."
    )
    install.add_argument(
        "--if-revision",
        type=revision_number,
        dest="if_revision",
        metavar="REV",
        help="Save only if the plugin's latest revision is still REV (0: only if it is not installed yet); "
        "otherwise print what changed since and exit 1 without saving.",
    )


def add_revision_arguments(sub: Any) -> None:
    """Add ``revisions`` and ``rollback`` to the ``plugins`` subparsers."""
    revisions_help = (
        "List a plugin's revisions, newest first: REV, when, who (the admin user, or the shell "
        "user for the command line), from where, what changed and the comment. A revision is "
        "recorded by every save that changes the source, configuration, schema, limits, HTTP "
        "setting or grants."
    )
    listing = sub.add_parser("revisions", help=revisions_help, description=revisions_help)
    listing.add_argument("slug")
    listing.add_argument(
        "--limit", type=positive_int, default=50, metavar="N", help="Show the newest N revisions (default 50)."
    )
    listing.add_argument("--json", action="store_true", help="Print a JSON list of objects instead of a table.")

    rollback_help = (
        "Restore revision REV's source, configuration, schema, limits, HTTP setting and grants. "
        "It is validated like any save: if it no longer validates (limits outside today's bounds, a "
        "grant on a model that is no longer exposed, ...) the errors go to stderr, nothing changes "
        "and the exit status is 1. Otherwise it is recorded as a new revision."
    )
    rollback = sub.add_parser("rollback", help=rollback_help, description=rollback_help)
    rollback.add_argument("slug")
    rollback.add_argument("revision", type=positive_int, metavar="REV")
    rollback.add_argument(
        "--comment", default="", metavar="TEXT", help='Why (default: "Rolled back to revision REV.").'
    )
    rollback.add_argument(
        "--if-revision",
        type=revision_number,
        dest="if_revision",
        metavar="LATEST",
        help="Roll back only if the plugin's latest revision is still LATEST.",
    )


def _one_line(text: str, limit: int) -> str:
    text = log_safe(" ".join(text.split()), limit + 1)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RevisionCommands:
    """``do_revisions``/``do_rollback`` and the ``install`` checks, mixed into the command."""

    stdout: Any
    stderr: Any

    def _plugin(self, slug: str) -> Plugin:  # provided by the command
        raise NotImplementedError

    def do_revisions(self, options: dict[str, Any]) -> None:
        plugin = self._plugin(options["slug"])
        rows = list(plugin.revisions.select_related("created_by").order_by("-number")[: options["limit"]])
        if options["json"]:
            self.stdout.write(json.dumps(revisions.revision_rows(rows), ensure_ascii=False, indent=2))
            return
        if not rows:
            self.stdout.write(f"{plugin.slug} has no revisions.")
            return
        table = [("REV", "SAVED", "BY", "FROM", "CHANGED", "COMMENT")]
        for r in rows:
            table.append(
                (
                    str(r.number),
                    timezone.localtime(r.created_at).isoformat(timespec="seconds"),
                    _one_line(r.author, 40) or "-",
                    r.origin,
                    revisions.describe_changes(r),
                    _one_line(r.comment, COMMENT_COLUMN_CHARS),
                )
            )
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
        for row in table:
            self.stdout.write(
                ("  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]).rstrip()
            )
        total = plugin.revisions.count()
        if total > len(rows):
            self.stderr.write(f"{total - len(rows)} older revision(s) not shown (--limit).")

    def do_rollback(self, options: dict[str, Any]) -> None:
        plugin = self._plugin(options["slug"])
        number = options["revision"]
        try:
            new = revisions.rollback(
                plugin,
                number,
                origin=CLI,
                name=revisions.shell_user_name(),
                comment=options["comment"],
                expected_latest=options["if_revision"],
            )
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                for message in messages:
                    self.stderr.write(f"{revisions.CHANGE_LABELS.get(name, name)}: {message}")
            self.stderr.write(f"Could not roll back {plugin.slug} to revision {number}. Nothing was changed.")
            sys.exit(1)
        if new is None:
            self.stdout.write(f"{plugin.slug} already matches revision {number}; nothing to do")
            return
        self.stdout.write(
            f"Rolled back {plugin.slug} to revision {number}: recorded revision {new.number} "
            f"({revisions.describe_changes(new)}); plugin version {new.plugin_version}"
        )

    def check_if_revision(self, plugin: Plugin | None, slug: str, expected: int | None) -> None:
        """``install --if-revision``: exit 1 (nothing saved) unless the latest revision is ``expected``."""
        if expected is None:
            return
        try:
            if plugin is None:
                if expected:
                    raise PluginConflict(f"plugin {slug!r} is not installed, not at revision {expected}", slug=slug)
                return
            if expected == 0:
                raise PluginConflict(
                    f"plugin {slug!r} is already installed (at revision {revisions.latest_number(plugin.pk)})",
                    slug=slug,
                )
            revisions.check_latest(plugin, expected)
        except PluginConflict as exc:
            self.stderr.write(f"PluginConflict: {exc}")
            self.stderr.write("Nothing was saved.")
            sys.exit(1)

    def write_recorded(self, recorded: list[PluginRevision]) -> None:
        for revision in recorded:
            self.stdout.write(f"Recorded revision {revision.number} ({revisions.describe_changes(revision)})")
