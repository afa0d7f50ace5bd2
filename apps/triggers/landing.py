"""File arrival: scanning the landing root for files that `file` triggers wait for.

A file starts a run once it is complete: when the trigger names a `marker` file, as soon as the
marker exists; otherwise when its size and modification time were the same at two scans in a row. Each file starts one run per content
(the TriggerEvent key is its path and sha256), which survives restarts because the ledger is in
the database; a file replaced by new content is a new file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from apps.triggers import services
from apps.triggers.models import FileSeen, TriggerBinding, TriggerKind, TriggerSource


def landing_root() -> Path:
    return Path(settings.FLOWDECK_LANDING_ROOT)


@dataclass
class ScanReport:
    seen: int = 0
    incomplete: int = 0
    started: int = 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _matches(root: Path, pattern: str) -> list[Path]:
    resolved_root = root.resolve()
    found = []
    for path in sorted(root.glob(pattern)):
        # A symlink or `..` must not reach outside the landing root.
        if path.is_file() and path.resolve().is_relative_to(resolved_root):
            found.append(path)
    return found


def scan_landing() -> ScanReport:
    """One pass over every file trigger; call it periodically (task) or by hand (command)."""
    root = landing_root()
    report = ScanReport()
    if not root.is_dir():
        return report
    for binding in TriggerBinding.objects.select_related("workflow__current_version").filter(kind=TriggerKind.FILE):
        marker = binding.config.get("marker")
        # None: no marker, so completeness is judged by the file no longer growing.
        marker_present = (root / marker).is_file() if marker else None
        for path in _matches(root, binding.config["path"]):
            if marker and path == root / marker:
                continue
            report.seen += 1
            started = _observe(binding, root, path, marker_present)
            report.started += started is True
            report.incomplete += started is None
    return report


def _observe(binding: TriggerBinding, root: Path, path: Path, marker_present: bool | None) -> bool | None:
    """Record what the scan saw; True when a run started, None while the file is not complete."""
    stat = path.stat()
    relative = str(path.relative_to(root))
    with transaction.atomic():
        seen, created = FileSeen.objects.select_for_update().get_or_create(
            workflow=binding.workflow, path=relative, defaults={"size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
        changed = (seen.size, seen.mtime_ns) != (stat.st_size, stat.st_mtime_ns)
        if changed:
            seen.size, seen.mtime_ns, seen.event = stat.st_size, stat.st_mtime_ns, None
            seen.save(update_fields=["size", "mtime_ns", "event"])
        if seen.event_id is not None:
            return False
        if marker_present is False or (marker_present is None and (created or changed)):
            return None
        sha256 = _sha256(path)
        offered = {"path": relative, "size": stat.st_size, "sha256": sha256}
        result = services.start_or_note(binding.workflow, TriggerSource.FILE, f"{relative}@{sha256}",
                                        inputs=services.offered_inputs(binding.workflow, offered), payload=offered)
        seen.event = result.event
        seen.save(update_fields=["event"])
        return result.created
