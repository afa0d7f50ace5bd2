"""Demo history for the console: a few hundred resolved incidents (fixtures/incidents/demo_history.jsonl)."""

from pathlib import Path

from django.conf import settings

from apps.incidents.importer import ImportReport, import_history

DEMO_HISTORY = Path(settings.BASE_DIR) / "fixtures" / "incidents" / "demo_history.jsonl"


def load_demo_incidents(actor=None) -> ImportReport:
    """Import the demo history (idempotent: a second call skips what is already there).

    Rows name the team "billing" or "people-ops" when the demo has them, else they are shared
    history; rows for a team that does not exist are reported and skipped.
    """
    return import_history(DEMO_HISTORY, actor=actor)
