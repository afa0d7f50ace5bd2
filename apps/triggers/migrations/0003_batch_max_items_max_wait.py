"""The spec's batch fields were renamed (`size` → `max_items`, `window` → `max_wait`): the
bindings saved under the old names are rewritten so their batches keep closing."""

from django.db import migrations, models

RENAMED = {"size": "max_items", "window": "max_wait"}


def _rename_batch_fields(apps, renamed: dict[str, str]) -> None:
    TriggerBinding = apps.get_model("triggers", "TriggerBinding")
    for binding in TriggerBinding.objects.filter(kind__in=["webhook", "queue"]):
        batch = (binding.config or {}).get("batch")
        if isinstance(batch, dict) and any(old in batch for old in renamed):
            binding.config["batch"] = {renamed.get(key, key): value for key, value in batch.items()}
            binding.save(update_fields=["config"])


def forwards(apps, schema_editor):
    _rename_batch_fields(apps, RENAMED)


def backwards(apps, schema_editor):
    _rename_batch_fields(apps, {new: old for old, new in RENAMED.items()})


class Migration(migrations.Migration):

    dependencies = [
        ('triggers', '0002_seed_uk_banking_calendar'),
    ]

    operations = [
        migrations.AlterField(
            model_name='eventbatch',
            name='close_reason',
            field=models.CharField(blank=True, help_text='The limit that closed it: max_items or max_wait.', max_length=16),
        ),
        migrations.AlterField(
            model_name='eventbatch',
            name='closes_at',
            field=models.DateTimeField(blank=True, help_text='When `max_wait` runs out, if set.', null=True),
        ),
        migrations.RunPython(forwards, backwards),
    ]
