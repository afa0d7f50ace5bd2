"""Bringing incident history from another tool: JSONL or CSV, one incident per row.

Columns: `title`, `text` (or `description`, `body`, `content`), `root_cause_category` (or
`category`), and optionally `resolution`, `occurred_at`, `source_url`, `team` (a team slug),
`root_cause` (or `root_cause_description`), `error_message`. Files written by other tools vary,
so the reader takes JSONL, a JSON array, or CSV/TSV (comma, semicolon or tab; fields of any
length, with newlines and quotes), UTF-8 or Windows-1252; a JSON value that is a list (a text
as paragraphs) is joined; dates may be ISO 8601, most written forms, or epoch seconds. A row
that cannot be read is reported with its line (or item) number and skipped; every good row is
kept. Rows without `team` become shared history that every signed-in person can read.
Re-importing a file skips rows already imported (same title, source URL and time).
"""

import csv
import json
import sys
from dataclasses import dataclass, field
from datetime import datetime, time, timezone as dt_timezone
from pathlib import Path

from dateutil import parser as date_parser
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from apps.accounts.models import Team
from apps.audit.log import record
from apps.incidents.models import Incident, IncidentSource, IncidentStatus
from apps.incidents.services import category_for_label
from apps.incidents.signals import incidents_imported
from apps.incidents.taxonomy import canonical_slug


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


TEXT_FIELDS = ("text", "description", "body", "content")
LABEL_FIELDS = ("root_cause_category", "category")
# Post-mortems run to many pages; a CSV field may be far longer than the csv module's default.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _clean(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):  # paragraphs, or several labels of which the first is the main one
        return "\n\n".join(filter(None, (_clean(v) for v in value)))
    return str(value).strip()


def _first(fields: dict, names: tuple[str, ...]) -> str:
    return next((value for value in (_clean(fields.get(n)) for n in names) if value), "")


def _label(fields: dict) -> str:
    value = next((fields.get(n) for n in LABEL_FIELDS if fields.get(n)), None)
    return _clean(value[0] if isinstance(value, list) and value else value)


def _parse_when(raw) -> datetime | None:
    if raw in (None, ""):
        return None
    text = str(raw).strip()
    if isinstance(raw, (int, float)) or text.isdigit():
        seconds = float(text)
        return datetime.fromtimestamp(seconds / 1000 if seconds > 1e11 else seconds, tz=dt_timezone.utc)
    when = parse_datetime(text.replace(" ", "T", 1)) if len(text) > 10 else None
    if when is None and len(text) == 10:
        day = parse_date(text)
        when = datetime.combine(day, time.min) if day else None
    if when is None:
        try:
            when = date_parser.parse(text)
        except (ValueError, OverflowError):
            raise ValueError(f"occurred_at {text!r} is not a date; use ISO 8601 such as 2024-03-09T02:30:00Z") from None
    return when if timezone.is_aware(when) else when.replace(tzinfo=dt_timezone.utc)


def _row(line: int, fields: dict) -> HistoryRow:
    # "Root cause category", "root-cause-category" and "root_cause_category" are one column.
    fields = {"_".join(str(k).lower().replace("-", " ").split()): v for k, v in fields.items() if k is not None}
    title = " ".join(_clean(fields.get("title")).split())
    text = _first(fields, TEXT_FIELDS)
    label = _label(fields)
    missing = [name for name, value in (("title", title), ("text", text), ("root_cause_category", label))
               if not value]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    if not canonical_slug(label):
        raise ValueError(f"root_cause_category {label!r} has no letters or digits")
    return HistoryRow(
        line=line, title=title[:300], text=text, category_label=label,
        resolution=_clean(fields.get("resolution")),
        root_cause=_clean(fields.get("root_cause")) or _clean(fields.get("root_cause_description")),
        error_message=_clean(fields.get("error_message")),
        occurred_at=_parse_when(fields.get("occurred_at")),
        source_url=_clean(fields.get("source_url"))[:500],
        team_slug=_clean(fields.get("team")),
    )


def _read_text(path: Path) -> str:
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:  # exported by a Windows tool
        return raw.decode("cp1252", errors="replace")


def read_history(path: Path) -> tuple[list[HistoryRow], list[tuple[int, str]]]:
    """Rows of a JSONL, JSON array or CSV file (by extension, else by first character) and the bad lines."""
    rows, errors = [], []
    text = _read_text(path)
    suffix = Path(path).suffix.lower()
    start = text.lstrip()[:1]
    if start == "[" and suffix not in {".csv", ".tsv"}:
        return _read_json_array(text)
    if suffix in {".jsonl", ".ndjson", ".json"} or start == "{":
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
    lines = text.splitlines(keepends=True)
    header = lines[0] if lines else ""
    delimiter = "\t" if suffix == ".tsv" else max((",", ";", "\t"), key=header.count)
    reader = csv.DictReader(lines, delimiter=delimiter)
    line_number = 1
    try:
        for fields in reader:
            start_line, line_number = line_number + 1, reader.line_num
            try:
                if None in fields:
                    raise ValueError("more values than header columns")
                rows.append(_row(start_line, fields))
            except ValueError as exc:
                errors.append((start_line, str(exc)))
    except csv.Error as exc:  # an unterminated quote swallows the rest of the file
        errors.append((line_number + 1, f"CSV cannot be read from here on: {exc}"))
    return rows, errors


def _read_json_array(text: str) -> tuple[list[HistoryRow], list[tuple[int, str]]]:
    """A JSON array of incident objects; bad items are reported by their position (1 = first)."""
    try:
        items = json.loads(text)
    except ValueError as exc:
        return [], [(getattr(exc, "lineno", 1), f"not valid JSON: {exc}")]
    rows, errors = [], []
    for number, fields in enumerate(items, start=1):
        try:
            if not isinstance(fields, dict):
                raise ValueError("an item must be one JSON object")
            rows.append(_row(number, fields))
        except ValueError as exc:
            errors.append((number, str(exc)))
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
