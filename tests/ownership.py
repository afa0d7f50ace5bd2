"""A runtime companion to tests/test_app_boundaries.py: while the suite runs, every save and
delete of a Flowdeck model is traced to the innermost module of apps/ that asked for it, and one
from another app is recorded (`instance.save()` is what the source check cannot see)."""

from __future__ import annotations

import sys
from pathlib import Path

from django.db.models.signals import pre_delete, pre_save

APPS_DIR = str(Path(__file__).resolve().parents[1] / "apps") + "/"
# Who writes another app's rows on purpose, and why: (writing module, model label).
ALLOWED = {
    ("apps/platform/management/commands/load_demo.py", "accounts.User"):
        "the demo loader creates the demo people",
}
found: set[str] = set()


def _writer() -> tuple[str, str] | None:
    """(app label, path) of the innermost frame in an app's package under apps/."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        relative = "apps/" + filename[len(APPS_DIR):]
        # Modules directly in apps/ (logging, settings) are shared plumbing, not an app.
        if filename.startswith(APPS_DIR) and "/migrations/" not in filename and relative.count("/") > 1:
            return relative.split("/")[1], relative
        frame = frame.f_back
    return None


def _check(sender, instance, **kwargs) -> None:
    meta = sender._meta
    if not sender.__module__.startswith("apps."):
        return
    writer = _writer()
    if writer is None:
        return  # written by a test's own setup
    app, path = writer
    if app != meta.app_label and (path, meta.label) not in ALLOWED:
        found.add(f"{path} writes {meta.label} (owned by {meta.app_label})")


def watch() -> None:
    pre_save.connect(_check, dispatch_uid="tests.ownership.save")
    pre_delete.connect(_check, dispatch_uid="tests.ownership.delete")
