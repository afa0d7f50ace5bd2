"""The validate_workflow and load_workflow management commands."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.workflows.models import Workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def spec_files(tmp_path, simple_spec):
    good = tmp_path / "good.yaml"
    good.write_text(simple_spec)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - id: a\n    type: mystery\n    timeout: later\n")
    return good, bad


def test_validate_prints_ok_for_valid_files(spec_files, capsys):
    good, _ = spec_files
    call_command("validate_workflow", str(good))
    assert capsys.readouterr().out == f"{good}: ok\n"


def test_validate_prints_every_error_and_fails(spec_files, capsys):
    good, bad = spec_files
    with pytest.raises(CommandError) as raised:
        call_command("validate_workflow", str(good), str(bad))
    assert raised.value.returncode == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{good}: ok"
    assert lines[1] == f"{bad}:4:11: steps[0].type: there is no step type `mystery` " \
                       "(Pick one from the Step types page; the platform team can add new ones.)"
    assert lines[2].startswith(f"{bad}:5:14: steps[0].timeout: `later` is not a duration (")
    assert len(lines) == 3


def test_load_creates_then_versions_a_workflow(spec_files, team, author, capsys):
    good, _ = spec_files
    call_command("load_workflow", str(good), "--team", "billing", "--user", author.username, "--message", "seed")
    workflow = Workflow.objects.get(name="month-end")
    assert workflow.current_version.created_by == author and workflow.current_version.message == "seed"
    good.write_text(good.read_text() + "concurrency: 2\n")
    call_command("load_workflow", str(good), "--team", "billing")
    assert "billing/month-end is at version 2" in capsys.readouterr().out.splitlines()[-1]


def test_load_refuses_invalid_yaml_and_unknown_team(spec_files, team, viewer):
    good, bad = spec_files
    with pytest.raises(CommandError, match="fix the 2 error"):
        call_command("load_workflow", str(bad), "--team", "billing")
    with pytest.raises(CommandError, match="No team 'nope'"):
        call_command("load_workflow", str(good), "--team", "nope")
    with pytest.raises(CommandError, match="author role"):
        call_command("load_workflow", str(good), "--team", "billing", "--user", viewer.username)
    assert not Workflow.objects.exists()
