"""Runbooks: markdown files under runbooks/, split by heading into sections.

A file may start with YAML front matter (`title`, `category`: the root-cause category it is
written for). `sync_runbooks()` compares each file's content hash with the stored one and
rewrites only changed runbooks; it returns the runbooks whose sections must be re-indexed.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.audit.log import record
from apps.knowledge.models import Runbook, RunbookSection
from apps.knowledge.textproc import content_hash

RUNBOOK_DIR = Path(settings.BASE_DIR) / "runbooks"
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)
_HEADING = re.compile(r"^(#{1,3})\s+(.+?)\s*#*\s*$", re.M)


@dataclass
class ParsedSection:
    anchor: str
    heading: str
    body: str


@dataclass
class ParsedRunbook:
    title: str
    category: str
    body: str
    sections: list[ParsedSection]


def parse_runbook(text: str, fallback_title: str) -> ParsedRunbook:
    meta = {}
    match = _FRONT_MATTER.match(text)
    if match:
        meta = yaml.safe_load(match.group(1)) or {}
        text = text[match.end():]
    headings = list(_HEADING.finditer(text))
    title = str(meta.get("title") or (headings[0].group(2) if headings else fallback_title))
    sections, seen = [], set()
    for i, heading in enumerate(headings):
        end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
        body = text[heading.end():end].strip()
        if not body:
            continue
        anchor = base = slugify(heading.group(2))[:190] or f"section-{i}"
        n = 2
        while anchor in seen:
            anchor, n = f"{base}-{n}", n + 1
        seen.add(anchor)
        sections.append(ParsedSection(anchor=anchor, heading=heading.group(2), body=body))
    if not headings and text.strip():
        sections.append(ParsedSection(anchor="overview", heading=title, body=text.strip()))
    return ParsedRunbook(title=title, category=str(meta.get("category", "")), body=text.strip(), sections=sections)


def sync_runbooks(directory: Path | None = None, actor=None) -> tuple[list[int], list[int]]:
    """Bring the database in line with the files. Returns (changed runbook ids, removed section ids)."""
    directory = Path(directory or RUNBOOK_DIR)
    changed, removed_sections = [], []
    seen_paths = set()
    for path in sorted(directory.rglob("*.md")):
        relative = str(path.relative_to(directory))
        if path.name.lower() == "readme.md":
            continue
        seen_paths.add(relative)
        text = path.read_text(encoding="utf-8")
        digest = content_hash(text)
        existing = Runbook.objects.filter(path=relative).first()
        if existing is not None and existing.content_hash == digest:
            continue
        parsed = parse_runbook(text, fallback_title=path.stem.replace("-", " ").capitalize())
        with transaction.atomic():
            runbook, _ = Runbook.objects.update_or_create(path=relative, defaults={
                "title": parsed.title[:300], "category": slugify(parsed.category)[:80], "content_hash": digest,
                "body": parsed.body, "updated_at": timezone.now()})
            old = {s.anchor: s for s in runbook.sections.all()}
            for position, section in enumerate(parsed.sections):
                RunbookSection.objects.update_or_create(runbook=runbook, anchor=section.anchor, defaults={
                    "heading": section.heading[:300], "body": section.body, "position": position,
                    "content_hash": content_hash(section.heading + "\n" + section.body)})
            gone = [s.pk for anchor, s in old.items() if anchor not in {p.anchor for p in parsed.sections}]
            RunbookSection.objects.filter(pk__in=gone).delete()
            removed_sections.extend(gone)
            record(actor, "runbook.synced", runbook, object_type="knowledge.runbook",
                   after={"path": relative, "content_hash": digest, "sections": len(parsed.sections)})
        changed.append(runbook.pk)
    for runbook in Runbook.objects.exclude(path__in=seen_paths):
        with transaction.atomic():
            removed_sections.extend(runbook.sections.values_list("pk", flat=True))
            record(actor, "runbook.removed", runbook, after={"path": runbook.path})
            runbook.delete()
    return changed, removed_sections
