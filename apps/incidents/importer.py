"""Bringing incident history from another tool: JSONL or CSV, one incident per row.

Columns: `title`, `text` (or `description`), `root_cause_category`, `resolution`, `occurred_at`,
`source_url`; optional `team` (a team slug), `root_cause` (or `root_cause_description`),
`error_message`. A row that cannot be read is reported with its line number and skipped; every
good row is kept. Rows without `team` become shared history that every signed-in person can read.
Re-importing a file skips rows already imported (same title, source URL and time).
"""

import csv
import json
from dataclasses import dataclass, field
from datetime import datetime, time, timezone as dt_timezone
from pathlib import Path

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from apps.accounts.models import Team
from apps.audit.log import record
from apps.incidents.models import Incident, IncidentSource, IncidentStatus
from apps.incidents.services import category_for_label
from apps.incidents.signals import incidents_imported


@dataclass
class HistoryRow:
    line: int
    title: str
    text: str
    category_label: str
    resolution: str = ""
    root_cause: str = ""
    error_message: str = ""
    occurred_at: datetime | None = None
    source_url: str = ""
    team_slug: str = ""


@dataclass
class ImportReport:
    imported: list[int] = field(default_factory=list)
    skipped_duplicates: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def _clean(value) -> str:
    return "" if value is None else str(value).strip()


def _parse_when(raw: str) -> datetime | None:
    if not raw:
        return None
    when = parse_datetime(raw.replace(" ", "T", 1)) if len(raw) > 10 else None
    if when is None:
        day = parse_date(raw[:10]) if len(raw) >= 10 else None
        if day is None:
            raise ValueError(f"occurred_at {raw!r} is not a date; use ISO 8601 such as 2024-03-09T02:30:00Z")
        when = datetime.combine(day, time.min)
    return when if timezone.is_aware(when) else when.replace(tzinfo=dt_timezone.utc)


def _row(line: int, fields: dict) -> HistoryRow:
    fields = {str(k).strip().lower(): v for k, v in fields.items() if k is not None}
    title = _clean(fields.get("title"))
    text = _clean(fields.get("text")) or _clean(fields.get("description"))
    label = _clean(fields.get("root_cause_category"))
    missing = [name for name, value in (("title", title), ("text", text), ("root_cause_category", label))
               if not value]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    return HistoryRow(
        line=line, title=title[:300], text=text, category_label=label,
        resolution=_clean(fields.get("resolution")),
        root_cause=_clean(fields.get("root_cause")) or _clean(fields.get("root_cause_description")),
        error_message=_clean(fields.get("error_message")),
        occurred_at=_parse_when(_clean(fields.get("occurred_at"))),
        source_url=_clean(fields.get("source_url"))[:500],
        team_slug=_clean(fields.get("team")),
    )


def read_history(path: Path) -> tuple[list[HistoryRow], list[tuple[int, str]]]:
    """Rows of a JSONL or CSV file (by extension, else by first character) and the bad lines."""
    rows, errors = [], []
    text = Path(path).read_text(encoding="utf-8-sig")
    is_jsonl = Path(path).suffix.lower() in {".jsonl", ".ndjson", ".json"} or text.lstrip().startswith("{")
    if is_jsonl:
        for line_number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                fields = json.loads(line)
                if not isinstance(fields, dict):
                    raise ValueError("a line must be one JSON object")
                rows.append(_row(line_number, fields))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                errors.append((line_number, str(exc)))
        return rows, errors
    reader = csv.DictReader(text.splitlines(keepends=True))
    line_number = 1
    for fields in reader:
        start, line_number = line_number + 1, reader.line_num
        try:
            if None in fields:
                raise ValueError("more values than header columns")
            rows.append(_row(start, fields))
        except ValueError as exc:
            errors.append((start, str(exc)))
    return rows, errors


def import_history(path: Path, actor=None, *, unknown_team_as_shared: bool = False) -> ImportReport:
    """Import a history file. A row naming a missing team is an error, unless `unknown_team_as_shared`."""
    rows, errors = read_history(path)
    report = ImportReport(errors=list(errors))
    teams = {team.slug: team for team in Team.objects.all()}
    for row in rows:
        team = teams.get(row.team_slug) if row.team_slug else None
        if row.team_slug and team is None and not unknown_team_as_shared:
            report.errors.append((row.line, f"team {row.team_slug!r} does not exist; create it or leave team empty"))
            continue
        occurred_at = row.occurred_at or timezone.now()
        with transaction.atomic():
            if Incident.objects.filter(source=IncidentSource.IMPORTED, title=row.title, source_url=row.source_url,
                                       occurred_at=occurred_at).exists():
                report.skipped_duplicates += 1
                continue
            incident = Incident.objects.create(
                team=team, title=row.title, description=row.text, source=IncidentSource.IMPORTED,
                status=IncidentStatus.RESOLVED, root_cause_category=category_for_label(row.category_label, actor),
                root_cause_description=row.root_cause, resolution=row.resolution, error_message=row.error_message,
                occurred_at=occurred_at, last_seen_at=occurred_at, resolved_at=occurred_at,
                source_url=row.source_url,
            )
        report.imported.append(incident.pk)
    report.errors.sort()
    if report.imported:
        with transaction.atomic():
            record(actor, "incidents.imported", object_type="incidents.incident", object_id=str(Path(path).name),
                   after={"file": Path(path).name, "imported": len(report.imported), "errors": len(report.errors)})
            ids = list(report.imported)
            transaction.on_commit(lambda: incidents_imported.send(sender=Incident, incident_ids=ids))
    return report
