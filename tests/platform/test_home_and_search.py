"""Home: what waits for the signed-in person; search: across workflows, runs, incidents and
runbooks, never showing another team's things."""

from django.urls import reverse

from apps.runs import testing_steps  # noqa: F401  (registers the test.* step types)
from tests.runs.factories import make_version, step


def _gated_run(team, author, operator, approver_group, drive):
    from apps.runs import engine

    version = make_version(team, [step("prepare"), step("pay", "test.echo", needs=["prepare"],
                                                       approval={"group": approver_group.slug, "quorum": 1,
                                                                 "timeout": None, "escalate_to": None,
                                                                 "on_expiry": "reject"})],
                           name="payroll", author=author)
    return drive(engine.start_run(operator, version))


def _paused_run(team, author, operator, drive):
    from apps.runs import engine

    version = make_version(team, [step("load", "test.fail", on_failure="pause", params={"message": "ledger locked"})],
                           name="ledger-load", author=author)
    return drive(engine.start_run(operator, version))


def test_home_shows_the_approval_waiting_for_the_approver(client_for, team, author, operator, approver,
                                                          approver_group, drive):
    run = _gated_run(team, author, operator, approver_group, drive)
    page = client_for(approver).get(reverse("home")).content.decode()
    assert "Waiting for your decision (1)" in page and "pay of payroll" in page and f"run #{run.pk}" in page


def test_home_lists_paused_runs_as_needing_attention_and_recent_runs(client_for, team, author, operator, drive):
    run = _paused_run(team, author, operator, drive)
    assert run.state == "paused"
    page = client_for(operator).get(reverse("home")).content.decode()
    attention = page.split('id="attention-h"')[1].split("</section>")[0]
    assert f"#{run.pk} ledger-load" in attention
    recent = page.split('id="recent-h"')[1].split("</section>")[0]
    assert reverse("runs:detail", args=[run.pk]) in recent


def test_home_with_nothing_to_do_says_what_appears_there(client_for, viewer):
    page = client_for(viewer).get(reverse("home")).content.decode()
    assert "Nothing waits for your decision" in page and "No run is paused" in page
    assert "Your teams have no runs yet" in page


def test_search_finds_workflows_and_runs_of_the_persons_teams_only(client_for, team, author, operator, outsider,
                                                                   drive):
    run = _paused_run(team, author, operator, drive)
    page = client_for(operator).get(reverse("platform:search"), {"q": "ledger"}).content.decode()
    assert reverse("workflows:detail", args=[run.workflow_id]) in page
    assert reverse("runs:detail", args=[run.pk]) in page
    by_number = client_for(operator).get(reverse("platform:search"), {"q": f"#{run.pk}", "kind": "runs"}).content.decode()
    assert reverse("runs:detail", args=[run.pk]) in by_number and "Runs matching" in by_number
    outside = client_for(outsider).get(reverse("platform:search"), {"q": "ledger"}).content.decode()
    assert reverse("runs:detail", args=[run.pk]) not in outside and "No workflows match" in outside


def test_search_finds_incidents_and_runbooks(client_for, team, operator):
    from apps.incidents.models import Incident
    from apps.knowledge.models import Runbook

    incident = Incident.objects.create(team=team, title="SFTP upload refused by the bank")
    runbook = Runbook.objects.create(path="sftp.md", title="SFTP uploads", content_hash="x", body="Check the key.")
    page = client_for(operator).get(reverse("platform:search"), {"q": "sftp"}).content.decode()
    assert reverse("incidents:detail", args=[incident.pk]) in page
    assert reverse("knowledge:runbook", args=[runbook.pk]) in page


def test_search_lists_are_paginated_per_kind(client_for, team, author):
    from apps.workflows.models import Workflow

    Workflow.objects.bulk_create([Workflow(team=team, name=f"nightly-{n:02}") for n in range(30)])
    client = client_for(author)
    everything = client.get(reverse("platform:search"), {"q": "nightly"}).content.decode()
    assert "All workflows matching" in everything
    second = client.get(reverse("platform:search"), {"q": "nightly", "kind": "workflows", "page": 2}).content.decode()
    assert "Page 2 of 2" in second and "nightly-29" in second and "nightly-00" not in second


def test_search_without_words_says_what_to_type(client_for, viewer):
    page = client_for(viewer).get(reverse("platform:search")).content.decode()
    assert "Type a workflow name, a run number" in page
