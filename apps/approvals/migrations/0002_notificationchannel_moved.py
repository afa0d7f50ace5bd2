# NotificationChannel now belongs to the notifications app (same table, renamed there).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("approvals", "0001_initial"),
        ("notifications", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="NotificationChannel")],
            database_operations=[],
        ),
    ]
