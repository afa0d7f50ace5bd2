"""Seed the built-in root-cause taxonomy (apps.incidents.taxonomy); admins edit it afterwards."""

from django.db import migrations


def seed(apps, schema_editor):
    from apps.incidents.taxonomy import DEFAULT_CATEGORIES

    RootCauseCategory = apps.get_model("incidents", "RootCauseCategory")
    for slug, name, description in DEFAULT_CATEGORIES:
        RootCauseCategory.objects.get_or_create(slug=slug, defaults={"name": name, "description": description})


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
