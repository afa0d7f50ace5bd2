"""Demo history for the console: a few hundred resolved incidents (fixtures/incidents/demo_history.jsonl)."""

from pathlib import Path

from django.conf import settings

from apps.incidents.importer import ImportReport, import_history

DEMO_HISTORY = Path(settings.BASE_DIR) / "fixtures" / "incidents" / "demo_history.jsonl"


def load_demo_incidents(actor=None) -> ImportReport:
    """Import the demo history (idempotent: a second call skips what is already there).

    Rows name the team "billing" or "people-ops"; where the demo has no such team they become
    shared history rather than being skipped.
    """
    return import_history(DEMO_HISTORY, actor=actor, unknown_team_as_shared=True)
