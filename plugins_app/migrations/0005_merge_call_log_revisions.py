# Joins the two branches that started from 0002: the execution log and revisions.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("plugins_app", "0003_call_log"),
        ("plugins_app", "0004_first_revisions"),
    ]

    operations = []
