"""``manage.py plugins``: install, list, enable, disable and call plugins from the shell."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from plugins_app import hooks
from plugins_app.exceptions import PluginError
from plugins_app.models import Plugin


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(f"not a JSON value: {text!r} ({exc}); strings need quotes, e.g. '\"World\"'") from None


class Command(BaseCommand):
    help = "Manage JavaScript plugins: install, list, enable, disable, call."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        install = sub.add_parser("install", help="Install a plugin from a file, or save a new version of it.")
        install.add_argument("file", metavar="FILE.js")
        install.add_argument("--slug", required=True)
        install.add_argument("--name")
        install.add_argument("--description")
        install.add_argument("--enable", action="store_true", help="Enable the plugin after installing it.")
        install.add_argument("--memory-mb", type=int, dest="memory_mb")
        install.add_argument("--timeout-ms", type=int, dest="timeout_ms")
        install.add_argument("--config", help="JSON object exposed to the plugin as `config`.")

        sub.add_parser("list", help="List installed plugins.")
        for name in ("enable", "disable"):
            p = sub.add_parser(name, help=f"{name.capitalize()} a plugin.")
            p.add_argument("slug")

        call = sub.add_parser("call", help="Call a hook; each ARG is a JSON value. Prints the result as JSON.")
        call.add_argument("slug")
        call.add_argument("hook")
        call.add_argument("hook_args", nargs="*", metavar="ARG")
        call.add_argument("--timeout", type=float, help="Seconds; can only shorten the plugin's limit.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        handler = getattr(self, f"do_{action}")
        try:
            handler(options)
        except PluginError as exc:
            self.stderr.write(f"{type(exc).__name__}: {exc}")
            sys.exit(1)

    # -- actions -------------------------------------------------------------------
    def do_install(self, options: dict[str, Any]) -> None:
        path = Path(options["file"])
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
        slug = options["slug"]
        plugin = Plugin.objects.filter(slug=slug).first()
        created = plugin is None
        if plugin is None:
            plugin = Plugin(slug=slug, name=options["name"] or slug)
        elif options["name"]:
            plugin.name = options["name"]
        plugin.source = source
        if options["description"] is not None:
            plugin.description = options["description"]
        if options["memory_mb"] is not None:
            plugin.memory_limit_mb = options["memory_mb"]
        if options["timeout_ms"] is not None:
            plugin.timeout_ms = options["timeout_ms"]
        if options["config"] is not None:
            plugin.config = _json_arg(options["config"])
        if options["enable"]:
            plugin.enabled = True
        try:
            plugin.full_clean()
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                for message in messages:
                    label = f"{path}: " if field == "source" else f"{field}: "
                    self.stderr.write(f"{label}{message}")
            sys.exit(1)
        with transaction.atomic():
            plugin.save()
        verb = "Installed" if created else "Updated"
        state = "enabled" if plugin.enabled else "disabled"
        self.stdout.write(
            f"{verb} {plugin.slug} version {plugin.version} ({state}); hooks: {', '.join(plugin.hooks)}"
        )

    def do_list(self, options: dict[str, Any]) -> None:
        rows = list(Plugin.objects.order_by("slug"))
        if not rows:
            self.stdout.write("No plugins installed.")
            return
        width = max(len(p.slug) for p in rows)
        for p in rows:
            state = "enabled " if p.enabled else "disabled"
            self.stdout.write(
                f"{p.slug:<{width}}  {state}  v{p.version:<4} {p.memory_limit_mb} MiB  {p.timeout_ms} ms  "
                f"hooks: {', '.join(p.hooks)}"
            )

    def _set_enabled(self, slug: str, enabled: bool) -> None:
        updated = Plugin.objects.filter(slug=slug).update(enabled=enabled)
        if not updated:
            raise CommandError(f"no plugin {slug!r} is installed")
        self.stdout.write(f"{slug} {'enabled' if enabled else 'disabled'}")

    def do_enable(self, options: dict[str, Any]) -> None:
        self._set_enabled(options["slug"], True)

    def do_disable(self, options: dict[str, Any]) -> None:
        self._set_enabled(options["slug"], False)

    def do_call(self, options: dict[str, Any]) -> None:
        args = [_json_arg(a) for a in options["hook_args"]]
        result = hooks.run(options["slug"], options["hook"], *args, timeout=options["timeout"])
        for line in result.logs:
            self.stderr.write(f"[{result.slug}] {line.level}: {line.message}")
        self.stdout.write(json.dumps(result.value, ensure_ascii=False))
