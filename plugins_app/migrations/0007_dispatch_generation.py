# The dispatch generation (plugins_app.dispatch): one counter row that every change affecting
# dispatch increments, so that every process knows when its cached dispatch state is stale.
# The row is created by the first change (no data migration).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("plugins_app", "0006_console_permission"),
    ]

    operations = [
        migrations.CreateModel(
            name="DispatchGeneration",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("value", models.BigIntegerField(default=0)),
            ],
            options={
                "verbose_name": "dispatch generation",
                "verbose_name_plural": "dispatch generation",
            },
        ),
    ]
