"""The demo workflows under fixtures/workflows validate against the real step types."""

from pathlib import Path

import pytest

from apps.accounts.models import ApproverGroup, Team
from apps.catalog.registry import get_step_type
from apps.workflows.spec import load_spec

FIXTURES = sorted((Path(__file__).resolve().parents[2] / "fixtures" / "workflows").glob("*.yaml"))


@pytest.fixture
def demo_approver_groups(db, make_user):
    people = [make_user(f"demo-approver-{n}") for n in range(2)]
    for slug in ("billing-approvers", "people-approvers", "data-approvers"):
        team = Team.objects.create(slug=slug.removesuffix("-approvers"), name=slug)
        ApproverGroup.objects.create(slug=slug, name=slug, team=team).members.set(people)


def test_there_are_six_demo_workflows():
    assert len(FIXTURES) == 6


@pytest.mark.skipif(get_step_type("http.request") is None, reason="the built-in step types are not registered yet")
@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_demo_workflow_is_valid(path, demo_approver_groups):
    result = load_spec(path.read_text())
    assert result.errors == []
    assert result.spec["name"] == path.stem
