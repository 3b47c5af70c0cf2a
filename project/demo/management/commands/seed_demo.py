"""``manage.py seed_demo``: install the example plugins and an admin account for the demo."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from plugins_app.models import Plugin

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins"

EXAMPLES = [
    {"slug": "greeter", "name": "Greeter", "file": "greeter.js", "config": {"version": "1.0.0"},
     "description": "The jsrun guide's greeter, unchanged."},
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
            plugin.enabled = True
            plugin.full_clean()
            plugin.save()
            self.stdout.write(f"plugin {plugin.slug}: version {plugin.version}, hooks {', '.join(plugin.hooks)}")
        User = get_user_model()
        username = os.environ.get("DEMO_ADMIN_USER", "admin")
        if not User.objects.filter(username=username).exists():
            password = os.environ.get("DEMO_ADMIN_PASSWORD", "admin")
            User.objects.create_superuser(username, f"{username}@example.com", password)
            self.stdout.write(f"created superuser {username!r} with password {password!r} (demo only)")
