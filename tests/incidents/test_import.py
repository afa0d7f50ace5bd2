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
