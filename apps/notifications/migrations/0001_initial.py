# The channel model moved here from approvals: the table already exists (approvals 0001 made it),
# so this migration only adopts it in the state; 0002 gives the table this app's name.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("accounts", "0001_initial"),
        ("approvals", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="NotificationChannel",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=100, unique=True)),
                        ("url", models.URLField(max_length=500)),
                        ("secret_encrypted", models.TextField(help_text="The HMAC secret, encrypted at rest.")),
                        ("event_kinds", models.JSONField(blank=True, default=list, help_text="Event kinds to send; empty: all.")),
                        ("enabled", models.BooleanField(default=True)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("team", models.ForeignKey(blank=True, help_text="Empty: every team.", null=True, on_delete=django.db.models.deletion.CASCADE, related_name="notification_channels", to="accounts.team")),
                    ],
                    options={"ordering": ["name"], "db_table": "approvals_notificationchannel"},
                ),
            ],
            database_operations=[],
        ),
    ]
