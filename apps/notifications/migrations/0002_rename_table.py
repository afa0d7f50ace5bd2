from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("notifications", "0001_initial"),
        ("approvals", "0002_notificationchannel_moved"),
    ]

    operations = [
        migrations.AlterModelTable(name="notificationchannel", table=None),
    ]
