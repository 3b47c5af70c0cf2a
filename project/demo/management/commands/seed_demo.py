"""``manage.py seed_demo``: install the example plugins and an admin account for the demo."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from plugins_app.models import Plugin, PluginGrant
from project.demo.models import Note

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins"

EXAMPLES = [
    {
        "slug": "greeter",
        "name": "Greeter",
        "file": "greeter.js",
        "config": {"version": "1.0.0"},
        "description": "The jsrun guide's greeter, unchanged.",
        "grants": [],
    },
    {
        "slug": "note-stats",
        "name": "Note stats",
        "file": "note_stats.js",
        "config": {"title": "Top notes"},
        "config_schema": {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]},
        "description": "Reads notes and usernames through db, counts views in storage.",
        "grants": [
            {"model": "auth.User", "read": ["id", "username"]},
            {"model": "demo.Note", "read": ["id", "author", "title", "score"], "update": ["score"]},
        ],
    },
    {
        "slug": "activity",
        "name": "Activity",
        "file": "activity.js",
        "config": {},
        "http": True,
        "description": "Filter, signal action, background action, template hook and HTTP endpoint in one.",
        "grants": [],
    },
    {
        "slug": "share-links",
        "name": "Share links",
        "file": "share_links.js",
        "config": {"site": "http://127.0.0.1:8000"},
        "description": "An ES module using the host API from plugin:host and web APIs (URL, crypto.subtle, timers).",
        "grants": [],
    },
]


class Command(BaseCommand):
    help = "Install the demo plugins (idempotent) and create the demo admin user if missing."

    def handle(self, *args: Any, **options: Any) -> None:
        for example in EXAMPLES:
            source = (PLUGIN_DIR / example["file"]).read_text(encoding="utf-8")
            plugin = Plugin.objects.filter(slug=example["slug"]).first() or Plugin(slug=example["slug"])
            plugin.name = example["name"]
            plugin.description = example["description"]
            plugin.source = source
            plugin.config = example["config"]
            plugin.config_schema = example.get("config_schema")
            plugin.http_enabled = example.get("http", False)
            plugin.enabled = True
            plugin.full_clean()
            plugin.save()
            for spec in example["grants"]:
                grant = PluginGrant.objects.filter(plugin=plugin, model=spec["model"]).first() or PluginGrant(
                    plugin=plugin, model=spec["model"]
                )
                grant.read, grant.update = spec.get("read", []), spec.get("update", [])
                grant.full_clean()
                grant.save()
            self.stdout.write(f"plugin {plugin.slug}: version {plugin.version}, hooks {', '.join(plugin.hooks)}")
        User = get_user_model()
        username = os.environ.get("DEMO_ADMIN_USER", "admin")
        if not User.objects.filter(username=username).exists():
            password = os.environ.get("DEMO_ADMIN_PASSWORD", "admin")
            User.objects.create_superuser(username, f"{username}@example.com", password)
            self.stdout.write(f"created superuser {username!r} with password {password!r} (demo only)")
        if not Note.objects.exists():
            authors = [User.objects.get(username=username)]
            for name in ("ada", "grace"):
                authors.append(User.objects.get_or_create(username=name)[0])
            for i, title in enumerate(["Plugins run in V8", "Grants are per field", "Hooks are data in, data out"]):
                Note.objects.create(author=authors[i % len(authors)], title=title, score=3 - i)
            self.stdout.write("created demo notes")
