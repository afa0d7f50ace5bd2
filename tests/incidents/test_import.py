import json

import pytest
from django.core.management import call_command

from apps.incidents.importer import import_history
from apps.incidents.models import Incident, IncidentSource, IncidentStatus, RootCauseCategory


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = {"title": "Disk full on lz-01", "text": "No space left on device", "root_cause_category": "Disk",
        "resolution": "Purged archives", "occurred_at": "2024-03-09T02:30:00Z", "source_url": "https://t/1"}


@pytest.mark.django_db
def test_jsonl_bad_rows_are_reported_by_line_and_good_rows_kept(tmp_path):
    lines = [
        json.dumps(GOOD),
        "{not json",
        json.dumps({**GOOD, "title": ""}),
        json.dumps({**GOOD, "title": "Late file", "occurred_at": "yesterday"}),
        "",
        json.dumps({**GOOD, "title": "Deadlock", "text": "", "description": "ORA-00060", "root_cause_category": "LOCKING"}),
    ]
    report = import_history(write(tmp_path, "history.jsonl", "\n".join(lines) + "\n"))

    assert [line for line, _ in report.errors] == [2, 3, 4]
    assert "missing title" in dict(report.errors)[3]
    assert "occurred_at" in dict(report.errors)[4]
    titles = set(Incident.objects.values_list("title", flat=True))
    assert titles == {"Disk full on lz-01", "Deadlock"}
    deadlock = Incident.objects.get(title="Deadlock")
    assert deadlock.description == "ORA-00060"
    assert deadlock.root_cause_category.slug == "lock-contention"  # alias, case-insensitive
    assert deadlock.status == IncidentStatus.RESOLVED and deadlock.source == IncidentSource.IMPORTED
    assert deadlock.team is None


@pytest.mark.django_db
def test_csv_import_reports_line_numbers_across_multiline_fields_and_accepts_unknown_labels(tmp_path, team):
    text = (
        "title,description,root_cause_category,resolution,occurred_at,source_url,team\n"
        '"Rates feed late","The feed\nusually lands at 04:30",upstream,Waited,2024-01-02,,billing\n'
        "Missing text,,network,Fixed,2024-01-03,,\n"
        "Cosmic ray,Bit flip in RAM,Solar Weather,Rebooted,2024-01-04,,\n"
        "Wrong team,Text,network,Fixed,2024-01-05,,nobody\n"
    )
    report = import_history(write(tmp_path, "history.csv", text))

    assert [line for line, _ in report.errors] == [4, 6]
    assert Incident.objects.get(title="Rates feed late").team == team
    assert RootCauseCategory.objects.get(slug="solar-weather").name == "Solar Weather"


@pytest.mark.django_db
def test_command_prints_skipped_lines_and_a_second_import_adds_nothing(tmp_path, capsys):
    path = write(tmp_path, "h.jsonl", json.dumps(GOOD) + "\n[1, 2]\n")
    call_command("import_incidents", str(path))
    out = capsys.readouterr()
    assert "h.jsonl:2: skipped" in out.err
    assert "Imported 1 incidents, skipped 1 bad rows" in out.out

    call_command("import_incidents", str(path))
    assert "Imported 0 incidents" in capsys.readouterr().out
    assert Incident.objects.count() == 1


@pytest.mark.django_db
def test_demo_history_loads_hundreds_of_resolved_incidents_into_existing_teams_or_shared(team):
    from apps.incidents.demo import load_demo_incidents

    report = load_demo_incidents()
    assert len(report.imported) >= 300 and report.errors == []
    assert Incident.objects.filter(team=team).exists()
    assert Incident.objects.filter(team__isnull=True).exists()
    assert not Incident.objects.exclude(status=IncidentStatus.RESOLVED).exists()


POSTMORTEM = """Summary
Between 14:02 and 14:51 UTC about 38% of checkout requests returned HTTP 502.

Timeline
14:00 A routing rule was merged.
14:35 Someone noticed the rule said "prefix" where 'exact' was meant; a \\ and a tab\there.

Root cause
The rule matched /checkout as well as /checkout/v2."""


@pytest.mark.django_db
def test_post_mortem_export_with_long_texts_other_column_names_and_foreign_labels_is_imported(tmp_path):
    lines = [
        {"title": "Checkout 502s after a routing change", "description": POSTMORTEM, "category": "Config change"},
        {"Title": "Payments down at the provider", "Body": ["Impact: cards failed.", "Cause: provider outage."],
         "Root cause category": ["dependency failure", "payments"], "occurred_at": "March 9, 2024 14:02"},
        {"title": "Release broke prices", "text": "A null discount. " * 3000, "root_cause_category": "deploy bug",
         "occurred_at": 1709993000, "resolution": None, "source_url": None},
        {"title": "Wrong label", "text": "Something", "root_cause_category": "--"},
    ]
    path = write(tmp_path, "export.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n")

    report = import_history(path)

    assert report.errors == [(4, "root_cause_category '--' has no letters or digits")]
    checkout = Incident.objects.get(title="Checkout 502s after a routing change")
    assert checkout.description == POSTMORTEM  # newlines, quotes, tabs and backslashes kept as written
    assert checkout.root_cause_category.slug == "config-change"
    payments = Incident.objects.get(title="Payments down at the provider")
    assert payments.description == "Impact: cards failed.\n\nCause: provider outage."
    assert payments.root_cause_category.slug == "dependency-outage"
    assert (payments.occurred_at.year, payments.occurred_at.month, payments.occurred_at.hour) == (2024, 3, 14)
    release = Incident.objects.get(title="Release broke prices")
    assert len(release.description) > 50_000 and release.occurred_at.year == 2024
    assert release.root_cause_category.name == "deploy bug"  # a label we do not ship is kept as written


@pytest.mark.django_db
def test_semicolon_csv_from_a_windows_tool_with_a_huge_quoted_field_is_imported(tmp_path):
    body = ('He said ""it\'s fine"";\nthen the café; list went down.\n\n' * 4000).strip()  # > csv's 128 KiB default
    text = ("Title;Description;Root_Cause_Category;Occurred_At\n"
            f'Mail list outage;"{body}";Human Error;2023-06-09\n'
            "No label;text;;2023-06-10\n")
    path = tmp_path / "export.csv"
    path.write_bytes(text.encode("cp1252"))

    report = import_history(path)

    incident = Incident.objects.get(title="Mail list outage")
    assert incident.description == body.replace('""', '"')
    assert "café" in incident.description
    assert incident.root_cause_category.slug == "human-error"
    assert report.errors == [(text.count("\n"), "missing root_cause_category")]  # the last line


@pytest.mark.django_db
def test_json_array_export_reports_bad_items_by_position(tmp_path):
    items = [GOOD, "not an object", {**GOOD, "title": "Later", "occurred_at": "when the moon is full"}]
    report = import_history(write(tmp_path, "export.json", json.dumps(items, indent=2)))

    assert [number for number, _ in report.errors] == [2, 3]
    assert "occurred_at" in report.errors[1][1]
    assert list(Incident.objects.values_list("title", flat=True)) == ["Disk full on lz-01"]
