"""Connections belong to teams. Every connection that existed before becomes shared with all
teams, so no workflow breaks; its empty `scoped_at` keeps the flowdeck.W002 check warning until
a platform admin decides who may use it. New connections start shared with no one."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        ('catalog', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='connection',
            name='scoped_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='connection',
            name='shared_with',
            field=models.ManyToManyField(blank=True, help_text='Other teams whose steps may use it.', related_name='shared_connections', to='accounts.team'),
        ),
        # Added as True so the rows that exist get it, then the default for new rows becomes False.
        migrations.AddField(
            model_name='connection',
            name='shared_with_all',
            field=models.BooleanField(default=True, help_text="Every team's steps may use it."),
        ),
        migrations.AlterField(
            model_name='connection',
            name='shared_with_all',
            field=models.BooleanField(default=False, help_text="Every team's steps may use it."),
        ),
        migrations.AddField(
            model_name='connection',
            name='team',
            field=models.ForeignKey(blank=True, help_text='The team that owns it; empty for a platform connection shared below.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='connections', to='accounts.team'),
        ),
    ]
