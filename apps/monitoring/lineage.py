"""Lineage: which runs wrote and read a dataset (from the engine's StepDataset rows), and
OpenLineage RunEvents sent to FLOWDECK_OPENLINEAGE_URL when it is set.

Events are plain JSON POSTs (the OpenLineage HTTP transport's format), sent by a Celery task
after the run's transaction commits, so a slow or dead lineage server never holds the engine.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.db.models import Max, QuerySet
from django.utils import timezone

from apps.accounts.access import scope_to_user
from apps.logging import get_logger
from apps.runs.models import DatasetDirection, Run, RunState, StepDataset

logger = get_logger("flowdeck.lineage")
PRODUCER = "https://github.com/flowdeck/flowdeck"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent"
EVENT_TYPES = {RunState.RUNNING: "START", RunState.SUCCEEDED: "COMPLETE", RunState.FAILED: "FAIL",
               RunState.CANCELLED: "ABORT"}
RUN_NAMESPACE = uuid.UUID("5b0c4f2e-8f0c-4c4e-9a57-6f6c6f776465")


def openlineage_url() -> str:
    return settings.FLOWDECK_OPENLINEAGE_URL


def visible_datasets(user, search: str = "") -> QuerySet:
    """Dataset URIs the person's teams touched, most recently used first."""
    rows = scope_to_user(StepDataset.objects.all(), user, team_field="attempt__step_run__run__team")
    if search:
        rows = rows.filter(uri__icontains=search)
    return rows.values("uri").annotate(last_used=Max("recorded_at")).order_by("-last_used")


def dataset_usage(user, uri: str) -> QuerySet:
    """Every visible write and read of `uri`, newest first, with the run and step."""
    return (scope_to_user(StepDataset.objects.filter(uri=uri), user, team_field="attempt__step_run__run__team")
            .select_related("attempt__step_run__run__workflow").order_by("-recorded_at", "-pk"))


def _dataset(uri: str) -> dict:
    parts = urlsplit(uri)
    if parts.scheme and parts.netloc:
        return {"namespace": f"{parts.scheme}://{parts.netloc}", "name": parts.path.lstrip("/") or uri}
    return {"namespace": parts.scheme or "flowdeck", "name": uri}


def run_event(run: Run, event_type: str) -> dict:
    datasets = StepDataset.objects.filter(attempt__step_run__run=run).values_list("direction", "uri").distinct()
    return {
        "eventType": event_type,
        "eventTime": (run.finished_at or run.started_at or timezone.now()).isoformat(),
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": str(uuid.uuid5(RUN_NAMESPACE, str(run.pk)))},
        "job": {"namespace": f"flowdeck/{run.team.slug}", "name": run.workflow.name},
        "inputs": [_dataset(uri) for direction, uri in datasets if direction == DatasetDirection.INPUT],
        "outputs": [_dataset(uri) for direction, uri in datasets if direction == DatasetDirection.OUTPUT],
    }


def event_type_for(state: str) -> str | None:
    """The OpenLineage event a run entering `state` emits, or None (none configured, or none for it)."""
    return EVENT_TYPES.get(state) if openlineage_url() else None


def send(run_id: int, event_type: str) -> bool:
    run = Run.objects.select_related("team", "workflow").get(pk=run_id)
    try:
        response = httpx.post(openlineage_url(), json=run_event(run, event_type), timeout=5)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        logger.warning("openlineage event not delivered", run_id=run_id, event=event_type, error=str(exc))
        return False
    return True
