"""One audit chain per team (and a platform chain for events with no team).

Existing events become the platform chain as they are: their position is their old sequence,
which is the number their hashes were computed over, so they verify unchanged; the single head
row and any retention checkpoint become the platform chain's. On PostgreSQL, new events draw
their global sequence from `audit_event_sequence` (no lock), started after the last one."""

from django.db import migrations, models

SEQUENCE = "audit_event_sequence"


def create_event_sequence(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite has one writer at a time: the next sequence is read under its lock
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(sequence), 0) + 1 FROM audit_auditevent")
        start = cursor.fetchone()[0]
        cursor.execute(f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE} START WITH {int(start)}")


def drop_event_sequence(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP SEQUENCE IF EXISTS {SEQUENCE}")


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0003_purge_checkpoint'),
    ]

    operations = [
        migrations.AddField(
            model_name='auditevent',
            name='chain',
            field=models.CharField(default='platform', max_length=40),
        ),
        migrations.AddField(
            model_name='auditevent',
            name='position',
            field=models.PositiveBigIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.RunSQL("UPDATE audit_auditevent SET position = sequence", migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name='auditevent',
            constraint=models.UniqueConstraint(fields=('chain', 'position'), name='audit_event_chain_position'),
        ),
        migrations.RenameField(model_name='auditchainhead', old_name='last_sequence', new_name='last_position'),
        migrations.AddField(
            model_name='auditchainhead',
            name='chain',
            field=models.CharField(default='platform', max_length=40, unique=True),
        ),
        migrations.RenameField(model_name='auditpurge', old_name='through_sequence', new_name='through_position'),
        migrations.AlterField(
            model_name='auditpurge',
            name='through_position',
            field=models.PositiveBigIntegerField(),
        ),
        migrations.AddField(
            model_name='auditpurge',
            name='chain',
            field=models.CharField(default='platform', max_length=40),
        ),
        migrations.AlterModelOptions(name='auditpurge', options={'ordering': ['-through_position']}),
        migrations.AddConstraint(
            model_name='auditpurge',
            constraint=models.UniqueConstraint(fields=('chain', 'through_position'), name='audit_purge_chain_position'),
        ),
        migrations.RunPython(create_event_sequence, drop_event_sequence),
    ]
