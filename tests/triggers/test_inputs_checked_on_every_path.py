"""Every path that starts a run checks its inputs against the workflow's declared inputs (one
`engine.start_run`): a value of the wrong type is refused with the input named. Triggers nobody
waits on note it on their trigger event; the pages, the API, the CLI and webhooks answer it."""

from datetime import datetime, timezone as dt_timezone

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.runs import engine
from apps.runs.models import Run, RunState
from apps.triggers import services
from apps.triggers.landing import scan_landing
from apps.triggers.models import Backfill, EventBatch, TriggerBinding, TriggerEvent, TriggerSource
from tests.runs.factories import step
from tests.triggers.conftest import declared

pytestmark = pytest.mark.django_db
UTC = dt_timezone.utc


def test_a_schedule_notes_a_slot_whose_input_does_not_fit(make_workflow, schedule):
    workflow = make_workflow([schedule("0 6 * * *")], inputs=declared(scheduled_for="integer"))
    binding = TriggerBinding.objects.get(workflow=workflow)
    binding.handled_until = datetime(2026, 11, 2, 5, tzinfo=UTC)
    binding.save()
    services.fire_due_schedules(datetime(2026, 11, 2, 6, 1, tzinfo=UTC))
    assert not Run.objects.filter(workflow=workflow).exists()
    assert "`scheduled_for` must be" in TriggerEvent.objects.get(workflow=workflow).error


def test_a_landed_file_is_noted_when_its_input_does_not_fit(make_workflow, settings, tmp_path):
    settings.FLOWDECK_LANDING_ROOT = tmp_path
    (tmp_path / "usage").mkdir()
    workflow = make_workflow([{"file": {"path": "usage/*.csv", "marker": None}}], inputs=declared(size="string"))
    landed = tmp_path / "usage" / "nov.csv"
    landed.write_text("a,b\n")
    scan_landing()
    scan_landing()  # unchanged across two scans: complete
    assert not Run.objects.filter(workflow=workflow).exists()
    assert "`size` must be" in TriggerEvent.objects.get(workflow=workflow, source=TriggerSource.FILE).error


def test_an_upstream_run_is_noted_when_the_downstream_input_does_not_fit(make_workflow, drive, operator):
    upstream = make_workflow([], name="nightly-etl", steps=[step("extract", params={"rows": 12})])
    downstream = make_workflow([{"after": {"workflow": "nightly-etl", "status": "succeeded"}}], name="report",
                               inputs=declared(upstream="string"))
    assert drive(engine.start_run(operator, upstream.current_version)).state == RunState.SUCCEEDED
    assert not Run.objects.filter(workflow=downstream).exists()
    assert "`upstream` must be" in TriggerEvent.objects.get(workflow=downstream).error


def test_a_micro_batch_is_closed_and_its_events_say_why_no_run_started(make_workflow):
    workflow = make_workflow([{"webhook": {"batch": {"max_items": 2, "max_wait": None}}}],
                             inputs=declared(events="object"))
    config = {"max_items": 2, "max_wait": None}
    for n in range(2):
        services.add_to_batch(workflow, TriggerSource.WEBHOOK, f"e{n}", {"n": n}, config)
    assert not Run.objects.filter(workflow=workflow).exists()
    assert EventBatch.objects.get(workflow=workflow).state == "closed"
    errors = set(TriggerEvent.objects.filter(workflow=workflow).values_list("error", flat=True))
    assert len(errors) == 1 and "`events` must be" in errors.pop()


def test_a_backfill_notes_each_slot_whose_input_does_not_fit(make_workflow, schedule, operator,
                                                              django_capture_on_commit_callbacks):
    workflow = make_workflow([schedule("0 6 * * *")], inputs=declared(scheduled_for="integer"), concurrency=2)
    with django_capture_on_commit_callbacks(execute=True):
        backfill = services.create_backfill(operator, workflow, datetime(2026, 11, 1, tzinfo=UTC),
                                            datetime(2026, 11, 2, 23, tzinfo=UTC))
    assert not Run.objects.filter(workflow=workflow).exists()
    assert backfill.slots.count() == 2
    assert all("`scheduled_for` must be" in slot.error for slot in backfill.slots.all())
    assert Backfill.objects.get(pk=backfill.pk).state == Backfill.State.FINISHED


def test_the_engine_itself_refuses_a_wrong_type_for_any_caller(make_workflow, operator):
    workflow = make_workflow([], inputs=declared(rows="integer"))
    with pytest.raises(engine.InvalidInputs) as refused:
        engine.start_run(operator, workflow.current_version, inputs={"rows": "many"})
    assert list(refused.value.errors) == ["rows"] and "`rows` must be" in refused.value.errors["rows"]
    assert not Run.objects.exists()


def test_the_command_line_names_the_field(make_workflow):
    make_workflow([], name="close", inputs=declared(rows="integer"))
    with pytest.raises(CommandError, match="rows: `rows` must be"):
        call_command("run_workflow", "close", "--input", "rows=many")
    assert not Run.objects.exists()
