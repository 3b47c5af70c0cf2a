"""``manage.py plugins``: install, list, enable, disable, resume and call plugins, run
actions and filters across plugins, grant plugins access to exposed models, export and
import plugins, and list, deliver and prune the delivery outbox, from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from plugins_app import breaker, calllog, doctor, hooks
from plugins_app.exceptions import PluginError
from plugins_app.exposure import get_exposure
from plugins_app.forms import split_field_names
from plugins_app.host_api.log import log_safe
from plugins_app.management.argtypes import seconds
from plugins_app.management.deliveries_cli import DeliveryCommands, add_delivery_arguments
from plugins_app.management.output import write_output
from plugins_app.management.revisions_cli import (
    RevisionCommands,
    add_install_revision_arguments,
    add_revision_arguments,
    cli_recording,
)
from plugins_app.management.transfer_cli import TransferCommands, add_transfer_arguments
from plugins_app.models import Plugin, PluginGrant


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(f"not a JSON value: {text!r} ({exc}); strings need quotes, e.g. '\"World\"'") from None


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# Written only by the circuit breaker (plugins_app.breaker).
BREAKER_FIELDS = ("consecutive_failures", "paused_at", "paused_reason")

# How the command's options are named in messages about the grant's fields.
GRANT_OPTION_NAMES = {"read": "--read", "create": "--create", "update": "--update", "can_delete": "--delete"}


def _names(value: list[str] | None) -> str:
    return ", ".join(value or []) or "-"


def describe_grant(grant: PluginGrant) -> str:
    return (
        f"{grant.model}: read={_names(grant.read)}; create={_names(grant.create)}; "
        f"update={_names(grant.update)}; delete={'yes' if grant.can_delete else 'no'}"
    )


class _Subcommands(argparse._SubParsersAction):  # type: ignore[type-arg]  # generic in typeshed only, not at run time
    """Subcommands whose ``--help`` has a description: their one-line help, unless given."""

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if kwargs.get("help") and not kwargs.get("description"):
            kwargs["description"] = kwargs["help"]
        return super().add_parser(name, **kwargs)


class Command(TransferCommands, RevisionCommands, DeliveryCommands, BaseCommand):
    help = (
        "Manage JavaScript plugins: install, list, enable, disable, resume, call, do-action, "
        "apply-filters, grant, revoke, grants, types, doctor, export, import; their revisions: revisions, rollback; "
        "and their deliveries: deliveries, deliver, prune."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION", action=_Subcommands)

        install = sub.add_parser("install", help="Install a plugin from a file, or save a new version of it.")
        install.add_argument("file", metavar="FILE.js")
        install.add_argument("--slug", required=True)
        add_install_revision_arguments(install)  # --comment, --if-revision
        install.add_argument("--name")
        install.add_argument("--description")
        install.add_argument("--enable", action="store_true", help="Enable the plugin after installing it.")
        install.add_argument("--memory-mb", type=int, dest="memory_mb")
        install.add_argument("--timeout-ms", type=int, dest="timeout_ms")
        install.add_argument("--config", help="JSON object exposed to the plugin as `config`.")
        install.add_argument(
            "--config-schema", dest="config_schema", help="JSON Schema the config must satisfy ('null' removes it)."
        )
        install.add_argument(
            "--priority",
            type=int,
            metavar="N",
            help="Order among plugins in actions and filters: lower runs first (new plugins: 100).",
        )
        install.add_argument(
            "--http",
            action=argparse.BooleanOptionalAction,
            dest="http",
            help="Let the plugin serve requests under /plugins/<slug>/ with its onRequest hook "
            "(--no-http stops it). Unchanged when not given.",
        )

        sub.add_parser("list", help="List installed plugins: state, priority, version, limits, hooks.")
        for name in ("enable", "disable"):
            p = sub.add_parser(name, help=f"{name.capitalize()} a plugin.")
            p.add_argument("slug")
        resume_help = (
            "Resume a plugin the circuit breaker paused after repeated failures (and reset its "
            "failure count). A plugin that is not paused is left alone (exit 0)."
        )
        resume = sub.add_parser("resume", help=resume_help, description=resume_help)
        resume.add_argument("slug")

        call = sub.add_parser("call", help="Call a hook; each ARG is a JSON value. Prints the result as JSON.")
        call.add_argument("slug")
        call.add_argument("hook")
        call.add_argument("hook_args", nargs="*", metavar="ARG")
        call.add_argument("--timeout", type=seconds, help="Seconds; can only shorten the plugin's limit.")

        action_help = (
            "Run HOOK of every enabled, unpaused plugin that defines it, in priority order; each ARG "
            'is a JSON value. Prints a JSON list with one object per plugin: {"plugin": slug, "ok": true, '
            '"value": ...} or {"plugin": slug, "ok": false, "error": "ClassName: message"}. Plugins\' log '
            "lines go to stderr as [slug] level: message. A failing plugin does not stop the others; "
            "the exit status is 0 when every plugin succeeded (or none defines HOOK) and 1 when any failed."
        )
        action = sub.add_parser("do-action", help=action_help, description=action_help)
        action.add_argument("hook", metavar="HOOK")
        action.add_argument("hook_args", nargs="*", metavar="ARG")
        action.add_argument("--timeout", type=seconds, help="Seconds per plugin; can only shorten its limit.")

        filters_help = (
            "Pass VALUE through HOOK of every enabled, unpaused plugin that defines it, in priority "
            "order: each gets (value, ARG, ...) and returns the new value. VALUE and each ARG are JSON "
            "values. Prints the final value as JSON. A failing plugin is skipped (logged as a warning) "
            "and the value it was given goes on, unless --fail-closed."
        )
        filters = sub.add_parser("apply-filters", help=filters_help, description=filters_help)
        filters.add_argument("hook", metavar="HOOK")
        filters.add_argument("value", metavar="VALUE")
        filters.add_argument("hook_args", nargs="*", metavar="ARG")
        filters.add_argument(
            "--fail-closed",
            action="store_true",
            dest="fail_closed",
            help="Stop at the first failing plugin: print ClassName: message on stderr, nothing on stdout, and exit 1.",
        )
        filters.add_argument("--timeout", type=seconds, help="Seconds per plugin; can only shorten its limit.")

        grant = sub.add_parser(
            "grant",
            help="Let a plugin use an exposed model. Replaces the plugin's whole grant on that model: "
            "lists not given become empty and delete becomes no.",
        )
        grant.add_argument("slug")
        grant.add_argument("model", metavar="app_label.Model")
        grant.add_argument("--read", default="", metavar="F,..", help="Fields it may read (comma-separated).")
        grant.add_argument("--create", default="", metavar="F,..", help="Fields it may set when creating rows.")
        grant.add_argument("--update", default="", metavar="F,..", help="Fields it may change on existing rows.")
        grant.add_argument("--delete", action="store_true", help="It may delete rows.")

        revoke = sub.add_parser("revoke", help="Remove a plugin's grant on a model.")
        revoke.add_argument("slug")
        revoke.add_argument("model", metavar="app_label.Model")

        grants = sub.add_parser("grants", help="List a plugin's grants.")
        grants.add_argument("slug")

        doctor_help = (
            "Check the installation: versions, the OS layers a real sandbox process applied "
            "(user, no_new_privs, landlock, seccomp), the sandbox pool and its limits. Prints a "
            "WARNING line per inactive layer."
        )
        doctor = sub.add_parser("doctor", help=doctor_help, description=doctor_help)
        doctor.add_argument("--json", action="store_true", help="Print the report as JSON.")
        doctor.add_argument(
            "--strict", action="store_true", help="Exit 1 when a layer the settings ask for is not active."
        )

        types_help = (
            "Print the TypeScript declarations (.d.ts) of plugin SLUG: the plugin API with its config "
            "typed from its JSON Schema, db typed from its grants, and the declared hooks it implements."
        )
        types = sub.add_parser("types", help=types_help, description=types_help)
        types.add_argument("slug", metavar="SLUG")
        types.add_argument("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")

        add_transfer_arguments(sub)
        add_delivery_arguments(sub)
        add_revision_arguments(sub)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        handler = getattr(self, f"do_{action.replace('-', '_')}")
        try:
            # Revisions recorded by this command: the shell user, from the CLI; hook calls: caller "cli".
            with cli_recording(), calllog.caller("cli"):
                handler(options)
        except PluginError as exc:
            self.stderr.write(_error_text(exc))
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
        self.check_if_revision(plugin, slug, options["if_revision"])
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
        if options["config_schema"] is not None:
            plugin.config_schema = _json_arg(options["config_schema"])
        if options["enable"]:
            plugin.enabled = True
        if options["priority"] is not None:
            plugin.priority = options["priority"]
        if options["http"] is not None:
            plugin.http_enabled = options["http"]
        try:
            plugin.full_clean()
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                for message in messages:
                    label = f"{path}: " if field == "source" else f"{field}: "
                    self.stderr.write(f"{label}{message}")
            sys.exit(1)
        with transaction.atomic(), cli_recording(options["comment"]) as recording:
            if options["if_revision"] is not None:  # again, under the row lock, after validating
                self.check_if_revision(
                    Plugin.objects.select_for_update().filter(slug=slug).first(), slug, options["if_revision"]
                )
            if created:
                plugin.save()
            else:
                # Leave the circuit breaker's columns alone: validating took a while, and a
                # pause (or failure count) recorded meanwhile must not be overwritten.
                plugin.save(
                    update_fields=[
                        f.name
                        for f in Plugin._meta.concrete_fields
                        if not f.primary_key and f.name not in BREAKER_FIELDS
                    ]
                )
            plugin.refresh_from_db(fields=BREAKER_FIELDS)
        verb = "Installed" if created else "Updated"
        state = "enabled" if plugin.enabled else "disabled"
        if plugin.is_paused:
            state += ", paused"
        if plugin.http_enabled:
            state += ", serves HTTP"
        self.stdout.write(
            f"{verb} {plugin.slug} version {plugin.version} ({state}, priority {plugin.priority}); "
            f"hooks: {', '.join(plugin.hooks)}"
        )
        self.write_recorded(recording.recorded)
        from plugins_app.catalogue import save_warnings  # the hook catalogue: misspelt or overlong hooks

        for warning in save_warnings(plugin.hooks, getattr(plugin, "_hook_arity", None)):
            self.stderr.write(f"{path}: warning: {warning}")

    def do_list(self, options: dict[str, Any]) -> None:
        """One line per plugin, by slug; a paused plugin gets a second line with when and why."""
        rows = list(Plugin.objects.order_by("slug"))
        if not rows:
            self.stdout.write("No plugins installed.")
            return
        width = max(len(p.slug) for p in rows)
        for p in rows:
            state = "enabled " if p.enabled else "disabled"
            paused = "paused" if p.is_paused else "      "
            http = "http" if p.http_enabled else "    "
            self.stdout.write(
                f"{p.slug:<{width}}  {state}  {paused}  priority {p.priority:<4} {http}  v{p.version:<4} "
                f"{p.memory_limit_mb} MiB  {p.timeout_ms} ms  hooks: {', '.join(p.hooks)}"
            )
            if p.paused_at is not None:  # p.is_paused
                reason = " ".join(p.paused_reason.split()) or "no reason recorded"
                self.stdout.write(f"{'':<{width}}  paused at {p.paused_at.isoformat(timespec='seconds')}: {reason}")

    def _set_enabled(self, slug: str, enabled: bool) -> None:
        updated = Plugin.objects.filter(slug=slug).update(enabled=enabled)
        if not updated:
            raise CommandError(f"no plugin {slug!r} is installed")
        self.stdout.write(f"{slug} {'enabled' if enabled else 'disabled'}")

    def do_enable(self, options: dict[str, Any]) -> None:
        self._set_enabled(options["slug"], True)

    def do_disable(self, options: dict[str, Any]) -> None:
        self._set_enabled(options["slug"], False)

    def do_resume(self, options: dict[str, Any]) -> None:
        plugin = self._plugin(options["slug"])
        if breaker.resume(plugin.slug):
            self.stdout.write(f"{plugin.slug} resumed (failure count reset)")
        else:
            self.stdout.write(f"{plugin.slug} is not paused; nothing to do")

    # -- calling ---------------------------------------------------------------------------
    def _write_logs(self, slug: str, logs: list[Any]) -> None:
        for line in logs:
            self.stderr.write(f"[{slug}] {line.level}: {log_safe(line.message)}")

    def do_call(self, options: dict[str, Any]) -> None:
        args = [_json_arg(a) for a in options["hook_args"]]
        result = hooks.run(options["slug"], options["hook"], *args, timeout=options["timeout"])
        self._write_logs(result.slug, result.logs)
        self.stdout.write(json.dumps(result.value, ensure_ascii=False))

    def do_do_action(self, options: dict[str, Any]) -> None:
        args = [_json_arg(a) for a in options["hook_args"]]
        results = hooks.do_action(options["hook"], *args, timeout=options["timeout"])
        report: list[dict[str, Any]] = []
        for result in results:
            self._write_logs(result.slug, result.logs)
            if result.error is None:  # result.ok
                report.append({"plugin": result.slug, "ok": True, "value": result.value})
            else:
                report.append({"plugin": result.slug, "ok": False, "error": _error_text(result.error)})
        self.stdout.write(json.dumps(report, ensure_ascii=False))
        if not all(result.ok for result in results):
            sys.exit(1)

    def do_apply_filters(self, options: dict[str, Any]) -> None:
        value = _json_arg(options["value"])
        args = [_json_arg(a) for a in options["hook_args"]]
        # With --fail-closed a plugin's PluginError propagates to handle(): stderr, exit 1.
        value = hooks.apply_filters(
            options["hook"], value, *args, fail_closed=options["fail_closed"], timeout=options["timeout"]
        )
        self.stdout.write(json.dumps(value, ensure_ascii=False))

    # -- doctor ----------------------------------------------------------------------------
    def do_doctor(self, options: dict[str, Any]) -> None:
        data = doctor.report()
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False))
        else:
            for line in doctor.text_lines(data):
                self.stdout.write(line)
        if options["strict"] and data["missing"]:
            sys.exit(1)

    # -- types -----------------------------------------------------------------------------
    def do_types(self, options: dict[str, Any]) -> None:
        from plugins_app.typegen import plugin_types

        text = plugin_types(self._plugin(options["slug"]))
        write_output(self.stdout, text, options["output"], f"Wrote the types of {options['slug']}")

    # -- grants ----------------------------------------------------------------------------
    @staticmethod
    def _plugin(slug: str) -> Plugin:
        plugin = Plugin.objects.filter(slug=slug).first()
        if plugin is None:
            raise CommandError(f"no plugin {slug!r} is installed")
        return plugin

    @staticmethod
    def _find_grant(plugin: Plugin, label: str) -> PluginGrant | None:
        exposure = get_exposure(label)
        canonical = exposure.label if exposure else label
        return plugin.grants.filter(model__iexact=canonical).first()

    def do_grant(self, options: dict[str, Any]) -> None:
        plugin = self._plugin(options["slug"])
        grant = self._find_grant(plugin, options["model"]) or PluginGrant(plugin=plugin)
        grant.model = options["model"]
        grant.read = split_field_names(options["read"])
        grant.create = split_field_names(options["create"])
        grant.update = split_field_names(options["update"])
        grant.can_delete = bool(options["delete"])
        try:
            grant.full_clean()  # validate_grant: within the exposure; normalizes the label
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                label = GRANT_OPTION_NAMES.get(field, field)
                for message in messages:
                    self.stderr.write(message if field == "__all__" else f"{label}: {message}")
            self.stderr.write("Nothing was saved.")
            sys.exit(1)
        with transaction.atomic():
            grant.save()
        plugin.refresh_from_db(fields=["version"])
        self.stdout.write(f"Granted {plugin.slug} access to {describe_grant(grant)} (plugin version {plugin.version})")

    def do_revoke(self, options: dict[str, Any]) -> None:
        plugin = self._plugin(options["slug"])
        grant = self._find_grant(plugin, options["model"])
        if grant is None:
            raise CommandError(f"plugin {plugin.slug!r} has no grant on {options['model']!r}")
        with transaction.atomic():
            grant.delete()
        plugin.refresh_from_db(fields=["version"])
        self.stdout.write(f"Revoked {plugin.slug}'s grant on {grant.model} (plugin version {plugin.version})")

    def do_grants(self, options: dict[str, Any]) -> None:
        plugin = self._plugin(options["slug"])
        rows = list(plugin.grants.order_by("model"))
        if not rows:
            self.stdout.write("No grants.")
            return
        for grant in rows:
            self.stdout.write(describe_grant(grant))
