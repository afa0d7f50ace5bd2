"""Workflows with triggers, built from a normalized spec (no YAML), and the engine's drivers.

`drive(run)` plays the worker in this process (tests/runs); the e2e fixtures (`worker`,
`wait_for`) start a real Celery worker for the end-to-end trigger tests.
"""

import hashlib
import json
import os

import pytest

from apps.catalog.registry import get_step_type, step_type
from tests.runs.factories import step


if get_step_type("test.rows") is None:
    @step_type("test.rows", params_schema={"type": "object"},
               summary="Reports `rows` records written and the datasets in `reads` and `writes`.")
    def rows(ctx):
        ctx.add_metrics(records_in=int(ctx.params.get("rows", 0)), records_out=int(ctx.params.get("rows", 0)))
        for uri in ctx.params.get("reads", []):
            ctx.record_dataset("in", uri)
        for uri in ctx.params.get("writes", []):
            ctx.record_dataset("out", uri)
        return {"rows": ctx.params.get("rows", 0)}


def declared(**types):
    return {name: {"type": kind, "required": False, "default": None, "description": ""} for name, kind in types.items()}


@pytest.fixture
def make_workflow(team):
    """`make_workflow(triggers, name=..., inputs=..., steps=..., sla=..., concurrency=..., team=...)`:
    saves a new current version (which syncs its triggers) and returns the workflow."""
    from apps.workflows.models import Workflow, WorkflowVersion

    def make(triggers, *, name="wf", inputs=None, steps=None, sla=None, concurrency=None, owner=None):
        spec = {"name": name, "description": "", "inputs": inputs or {}, "triggers": triggers, "sla": sla,
                "concurrency": concurrency, "steps": steps or [step("echo", params={"ok": True})]}
        workflow, _ = Workflow.objects.get_or_create(team=owner or team, name=name)
        source = json.dumps(spec)
        version = WorkflowVersion.objects.create(
            workflow=workflow, number=workflow.versions.count() + 1, source=source, spec=spec,
            source_sha256=hashlib.sha256(source.encode()).hexdigest())
        workflow.current_version = version
        workflow.save(update_fields=["current_version"])
        return workflow

    return make


@pytest.fixture
def schedule():
    def make(cron, timezone="UTC", *, calendar=None, catch_up="skip"):
        return {"schedule": {"cron": cron, "timezone": timezone, "calendar": calendar, "catch_up": catch_up}}

    return make


def require_broker(kind: str, answers) -> None:
    """Call `answers()`; a broker that does not answer fails the test in CI (CI=true), else skips it."""
    try:
        answers()
    except Exception as exc:  # noqa: BLE001  (any failure means the broker is not there)
        if os.environ.get("CI") == "true":
            pytest.fail(f"{kind} is required in CI and does not answer: {exc}")
        pytest.skip(f"{kind} does not answer: {exc}")
