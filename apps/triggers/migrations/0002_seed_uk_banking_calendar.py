"""Seed the `uk-banking` calendar: bank holidays in England and Wales, 2026 and 2027 (gov.uk)."""

from datetime import date

from django.db import migrations

UK_BANK_HOLIDAYS = [
    (date(2026, 1, 1), "New Year's Day"),
    (date(2026, 4, 3), "Good Friday"),
    (date(2026, 4, 6), "Easter Monday"),
    (date(2026, 5, 4), "Early May bank holiday"),
    (date(2026, 5, 25), "Spring bank holiday"),
    (date(2026, 8, 31), "Summer bank holiday"),
    (date(2026, 12, 25), "Christmas Day"),
    (date(2026, 12, 28), "Boxing Day (substitute day)"),
    (date(2027, 1, 1), "New Year's Day"),
    (date(2027, 3, 26), "Good Friday"),
    (date(2027, 3, 29), "Easter Monday"),
    (date(2027, 5, 3), "Early May bank holiday"),
    (date(2027, 5, 31), "Spring bank holiday"),
    (date(2027, 8, 30), "Summer bank holiday"),
    (date(2027, 12, 27), "Christmas Day (substitute day)"),
    (date(2027, 12, 28), "Boxing Day (substitute day)"),
]


def seed(apps, schema_editor):
    BusinessCalendar = apps.get_model("triggers", "BusinessCalendar")
    Holiday = apps.get_model("triggers", "Holiday")
    calendar, _ = BusinessCalendar.objects.get_or_create(slug="uk-banking", defaults={
        "name": "UK banking days (England and Wales bank holidays)"})
    for day, name in UK_BANK_HOLIDAYS:
        Holiday.objects.get_or_create(calendar=calendar, date=day, defaults={"name": name})


def unseed(apps, schema_editor):
    apps.get_model("triggers", "BusinessCalendar").objects.filter(slug="uk-banking").delete()


class Migration(migrations.Migration):
    dependencies = [("triggers", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
