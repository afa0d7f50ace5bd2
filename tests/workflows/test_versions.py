"""Saving workflows: versions are immutable, unchanged YAML adds nothing, authors only, diffs."""

import pytest

from apps.audit.models import AuditEvent
from apps.workflows.models import Workflow, WorkflowVersion
from apps.workflows.services import NotAnAuthor, SpecInvalid, diff_versions, save_version

pytestmark = pytest.mark.django_db


def test_first_save_creates_the_workflow_and_audits_it(author, team, simple_spec):
    version = save_version(author, team=team, source=simple_spec, message="first")
    workflow = Workflow.objects.get(team=team, name="month-end")
    assert workflow.current_version == version and version.number == 1
    assert workflow.description == "Closes the month." and workflow.created_by == author
    assert version.spec["steps"][1]["needs"] == ["extract"]
    event = AuditEvent.objects.get(action="workflow.version_created")
    assert event.actor == author and event.after["number"] == 1 and event.after["new_workflow"] is True


def test_changed_source_adds_a_version_and_keeps_the_old_one_as_it_was(author, team, saved_workflow, simple_spec):
    first = saved_workflow.current_version
    second = save_version(author, team=team, source=simple_spec.replace("seconds: 1", "seconds: 2"))
    first.refresh_from_db()
    saved_workflow.refresh_from_db()
    assert second.number == 2 and saved_workflow.current_version == second
    assert first.source == simple_spec and first.spec["steps"][1]["with"] == {"seconds": 1}
    assert AuditEvent.objects.filter(action="workflow.version_created").count() == 2


def test_unchanged_source_returns_the_current_version(author, team, saved_workflow, simple_spec):
    assert save_version(author, team=team, source=simple_spec) == saved_workflow.current_version
    assert WorkflowVersion.objects.count() == 1


def test_invalid_source_raises_with_every_error_and_saves_nothing(author, team):
    with pytest.raises(SpecInvalid) as raised:
        save_version(author, team=team, source="name: Bad Name\nsteps:\n  - id: A\n    type: test.nope\n")
    assert [e.path for e in raised.value.errors] == ["name", "steps[0].id", "steps[0].type"]
    assert not Workflow.objects.exists()


def test_viewer_cannot_save(viewer, team, simple_spec):
    with pytest.raises(NotAnAuthor):
        save_version(viewer, team=team, source=simple_spec)
    assert not Workflow.objects.exists()


def test_author_of_another_team_cannot_save_here(outsider, team, simple_spec):
    with pytest.raises(NotAnAuthor):
        save_version(outsider, team=team, source=simple_spec)


def test_editing_cannot_rename_the_workflow(author, team, saved_workflow, simple_spec):
    with pytest.raises(SpecInvalid) as raised:
        save_version(author, team=team, source=simple_spec.replace("month-end", "month-start"), workflow=saved_workflow)
    assert raised.value.errors[0].path == "name" and raised.value.errors[0].line == 1


def test_diff_numbers_the_lines_of_both_versions(author, team, saved_workflow, simple_spec):
    first = saved_workflow.current_version
    second = save_version(author, team=team, source=simple_spec.replace("seconds: 1", "seconds: 30"))
    diff = diff_versions(first, second)
    changed = [(line.kind, line.old_number, line.new_number, line.text) for line in diff.lines if line.kind in ("added", "removed")]
    assert changed == [("removed", 12, None, "    with: {seconds: 1}"), ("added", None, 12, "    with: {seconds: 30}")]
    assert diff.lines[0].text == "@@ -9,4 +9,4 @@"
    assert "-    with: {seconds: 1}\n+    with: {seconds: 30}\n" in diff.unified
