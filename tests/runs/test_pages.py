"""Run pages: the list with filters, a run live, a step's detail, starting runs and the operator's
actions, each scoped to the person's teams and roles."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.approvals.models import ApprovalRequest
from apps.runs import engine
from apps.runs.models import Run, RunState, Trigger
from tests.runs.factories import decide, make_version, step

pytestmark = pytest.mark.django_db

REASON = {"reason_code": "unrecoverable", "comment": "the ledger is closed"}

PERIOD = {"period": {"type": "string", "required": True, "default": None, "description": "Month to bill."},
          "rows": {"type": "integer", "required": False, "default": 10, "description": ""}}


@pytest.fixture
def version(team):
    return make_version(team, [step("extract"), step("load", "test.fail", needs=["extract"], on_failure="pause")],
                       name="billing-close", inputs=PERIOD)


@pytest.fixture
def paused_run(version, operator, drive):
    return drive(engine.start_run(operator, version, inputs={"period": "2026-11"}))


def test_run_list_shows_team_runs_and_hides_other_teams(client_for, paused_run, outsider, viewer, other_team):
    theirs = start_other_team_run(other_team, outsider)
    page = client_for(viewer).get(reverse("runs:list"))
    assert page.status_code == 200
    assert f"#{paused_run.pk}" in page.text and f"#{theirs.pk}<" not in page.text


def start_other_team_run(team, actor):
    return engine.start_run(actor, make_version(team, [step("only")], name="their-flow"))


def test_run_list_filters_by_state_workflow_trigger_and_dates(client_for, paused_run, team, operator, viewer):
    other = engine.start_run(operator, make_version(team, [step("only")], name="other-flow"), trigger=Trigger.API)
    client = client_for(viewer)
    by_state = client.get(reverse("runs:list"), {"state": "paused"}).text
    assert f"#{paused_run.pk}<" in by_state and f"#{other.pk}<" not in by_state
    by_workflow = client.get(reverse("runs:list"), {"workflow": other.workflow_id}).text
    assert f"#{other.pk}<" in by_workflow and f"#{paused_run.pk}<" not in by_workflow
    by_trigger = client.get(reverse("runs:list"), {"trigger": "api"}).text
    assert f"#{other.pk}<" in by_trigger and f"#{paused_run.pk}<" not in by_trigger
    Run.objects.filter(pk=other.pk).update(created_at=timezone.now() - timedelta(days=10))
    recent = client.get(reverse("runs:list"), {"since": (timezone.now() - timedelta(days=2)).date().isoformat()}).text
    assert f"#{paused_run.pk}<" in recent and f"#{other.pk}<" not in recent
    nothing = client.get(reverse("runs:list"), {"state": "succeeded", "team": "billing"}).text
    assert "No run matches these filters" in nothing


def test_run_list_names_states_and_triggers_and_keeps_the_chosen_workflow(client_for, paused_run, viewer):
    page = client_for(viewer).get(reverse("runs:list"), {"workflow": paused_run.workflow_id}).text
    assert '<span class="badge state-paused">Paused (failed, waiting for a decision)</span>' in page
    assert "<td>Manual</td>" in page
    assert f'<option value="{paused_run.workflow_id}" selected>billing/billing-close</option>' in page


def test_run_list_is_paginated(client_for, team, operator, viewer):
    version = make_version(team, [step("only")], name="many")
    for _ in range(27):
        engine.start_run(operator, version)
    client = client_for(viewer)
    first = client.get(reverse("runs:list"))
    assert "Page 1 of 2" in first.text and first.text.count('href="/runs/') >= 25
    assert "Page 2 of 2" in client.get(reverse("runs:list"), {"page": 2}).text


def test_pages_of_many_rows_take_as_many_queries_as_pages_of_one(client_for, team, operator, viewer):
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    version = make_version(team, [step("first"), step("second", needs=["first"])], name="counted")
    client = client_for(viewer)

    def queries(path: str) -> int:
        cache.clear()  # the inbox badge is counted each time
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path).status_code == 200
        return len(captured)

    run = engine.start_run(operator, version)
    paths = [reverse("runs:list"), reverse("runs:detail", args=[run.pk]), reverse("home")]
    alone = [queries(path) for path in paths]
    for _ in range(5):
        engine.start_run(operator, version)
    assert [queries(path) for path in paths] == alone


def test_run_list_past_the_count_cap_pages_newest_first_to_the_end(client_for, team, operator, viewer, monkeypatch):
    monkeypatch.setattr("apps.runs.views.RUNS_PER_PAGE", 10)
    monkeypatch.setattr("apps.runs.views.RUNS_COUNT_CAP", 25)
    version = make_version(team, [step("only")], name="long-history")
    runs = [engine.start_run(operator, version) for _ in range(32)]
    client = client_for(viewer)
    first = client.get(reverse("runs:list")).text
    assert "Page 1 of many" in first and "page=2" in first and "Older runs" in first
    assert f"#{runs[-1].pk}<" in first and f"#{runs[-10].pk}<" in first and f"#{runs[-11].pk}<" not in first
    last = client.get(reverse("runs:list"), {"page": 4}).text
    assert "Page 4 of many" in last and "Older runs" not in last and "Newer runs" in last
    assert f"#{runs[0].pk}<" in last and f"#{runs[1].pk}<" in last and f"#{runs[2].pk}<" not in last
    past_the_end = client.get(reverse("runs:list"), {"page": 9}).text
    assert "Page 4 of 4" in past_the_end and f"#{runs[0].pk}<" in past_the_end
    assert "Page 1 of many" in client.get(reverse("runs:list"), {"page": "x"}).text


def test_empty_run_list_says_how_to_start_one(client_for, viewer):
    assert "No runs yet in your teams" in client_for(viewer).get(reverse("runs:list")).text


def test_run_detail_shows_graph_steps_attempts_and_summary(client_for, paused_run, viewer):
    page = client_for(viewer).get(reverse("runs:detail", args=[paused_run.pk]))
    assert page.status_code == 200
    assert "<svg" in page.text and reverse("runs:step", args=[paused_run.pk, "load"]) in page.text
    assert "failed and waits for a decision by an operator of Billing" in page.text
    assert "Timeline of attempts" in page.text and "failed on purpose" in page.text
    # Viewers see, but get no action buttons.
    assert "Cancel run" not in page.text


def test_run_detail_names_states_and_version_without_reading_the_versions_yaml(client_for, paused_run, viewer):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        page = client_for(viewer).get(reverse("runs:detail", args=[paused_run.pk]))
    assert f'v{paused_run.version.number}</a>' in page.text
    assert '<span class="badge state-paused">Paused (failed, waiting for a decision)</span>' in page.text
    assert '<span class="badge state-failed">Failed</span>' in page.text and "Manual" in page.text
    assert not any('"workflows_workflowversion"."source"' in query["sql"] for query in queries)


def test_run_detail_polls_while_unfinished_and_stops_when_finished(client_for, paused_run, operator):
    client = client_for(operator)
    fragment = client.get(reverse("runs:detail", args=[paused_run.pk]), HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 2s"' in fragment.text and "<html" not in fragment.text
    decide(operator, paused_run, "abort")
    finished = client.get(reverse("runs:detail", args=[paused_run.pk]), HTTP_HX_REQUEST="true")
    assert "hx-trigger" not in finished.text and "Failed" in finished.text


def test_outsider_gets_404_on_run_step_and_actions(client_for, paused_run, outsider):
    client = client_for(outsider)
    assert client.get(reverse("runs:detail", args=[paused_run.pk])).status_code == 404
    assert client.get(reverse("runs:step", args=[paused_run.pk, "load"])).status_code == 404
    assert client.post(reverse("runs:cancel", args=[paused_run.pk])).status_code == 404


def test_viewer_may_not_act(client_for, paused_run, viewer):
    client = client_for(viewer)
    assert client.post(reverse("runs:cancel", args=[paused_run.pk])).status_code == 403
    assert client.post(reverse("runs:abort", args=[paused_run.pk]), REASON).status_code == 403
    paused_run.refresh_from_db()
    assert paused_run.state == RunState.PAUSED


def test_step_page_shows_error_logs_and_sends_operators_to_the_checkpoint(client_for, paused_run, operator):
    checkpoint = ApprovalRequest.objects.get(run=paused_run, kind="checkpoint")
    page = client_for(operator).get(reverse("runs:step", args=[paused_run.pk, "load"]))
    assert page.status_code == 200
    assert "StepError" in page.text and "failed on purpose" in page.text
    assert f'href="{reverse("approvals:detail", args=[checkpoint.pk])}"' in page.text
    assert f"Decide at checkpoint #{checkpoint.pk}" in page.text
    errors_only = client_for(operator).get(reverse("runs:step", args=[paused_run.pk, "load"]), {"level": "error"})
    assert "level-error" in errors_only.text


def test_step_page_shows_output_in_the_json_viewer(client_for, paused_run, viewer):
    page = client_for(viewer).get(reverse("runs:step", args=[paused_run.pk, "extract"]))
    assert page.status_code == 200 and 'aria-label="Output of the step"' in page.text


def test_run_page_links_each_paused_step_to_its_checkpoint_instead_of_abort_buttons(client_for, paused_run, operator):
    checkpoint = ApprovalRequest.objects.get(run=paused_run, kind="checkpoint")
    page = client_for(operator).get(reverse("runs:detail", args=[paused_run.pk]))
    assert f"decide at checkpoint #{checkpoint.pk}" in page.text
    assert reverse("runs:abort", args=[paused_run.pk]) not in page.text


def test_aborting_a_paused_run_without_a_reason_sends_the_operator_to_its_checkpoint(client_for, paused_run,
                                                                                      operator):
    checkpoint = ApprovalRequest.objects.get(run=paused_run, kind="checkpoint")
    response = client_for(operator).post(reverse("runs:abort", args=[paused_run.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("approvals:detail", args=[checkpoint.pk])
    assert "Pick a reason from the list" in response.text
    paused_run.refresh_from_db()
    checkpoint.refresh_from_db()
    assert paused_run.state == RunState.PAUSED and checkpoint.state == "pending" and not checkpoint.decisions.exists()


def test_aborting_a_paused_run_with_a_reason_decides_its_checkpoint(client_for, paused_run, operator):
    response = client_for(operator).post(reverse("runs:abort", args=[paused_run.pk]), REASON)
    assert response.status_code == 302
    paused_run.refresh_from_db()
    checkpoint = ApprovalRequest.objects.get(run=paused_run, kind="checkpoint")
    assert paused_run.state == RunState.FAILED and checkpoint.outcome == "abort"
    assert checkpoint.decisions.get().person == operator


def test_a_paused_run_is_not_cancelled_past_its_checkpoint(client_for, paused_run, operator):
    response = client_for(operator).post(reverse("runs:cancel", args=[paused_run.pk]))
    assert response.status_code == 409 and "decide at its checkpoint instead" in response.text
    paused_run.refresh_from_db()
    assert paused_run.state == RunState.PAUSED
    assert ApprovalRequest.objects.get(run=paused_run, kind="checkpoint").state == "pending"


def test_action_the_state_no_longer_allows_answers_409_with_the_reason(client_for, paused_run, operator):
    client = client_for(operator)
    assert client.post(reverse("runs:abort", args=[paused_run.pk]), REASON).status_code == 302
    again = client.post(reverse("runs:cancel", args=[paused_run.pk]))
    assert again.status_code == 409 and "already failed; there is nothing to cancel" in again.text
    abort = client.post(reverse("runs:abort", args=[paused_run.pk]), REASON)
    assert abort.status_code == 409 and "only a running, waiting or paused run can be aborted" in abort.text


def test_rerun_from_failure_opens_the_new_run(client_for, paused_run, operator):
    client = client_for(operator)
    client.post(reverse("runs:abort", args=[paused_run.pk]), REASON)
    response = client.post(reverse("runs:rerun", args=[paused_run.pk]))
    new_run = Run.objects.get(rerun_of=paused_run)
    assert response.status_code == 302 and response.url == reverse("runs:detail", args=[new_run.pk])
    assert new_run.step_runs.get(step_id="extract").reused_from is not None


def test_workflow_page_offers_start_run_to_operators(client_for, version, operator, viewer):
    page = client_for(operator).get(reverse("workflows:detail", args=[version.workflow_id]))
    assert reverse("runs:start", args=[version.workflow_id]) in page.text and 'for="input-period"' in page.text
    assert reverse("runs:start", args=[version.workflow_id]) not in \
        client_for(viewer).get(reverse("workflows:detail", args=[version.workflow_id])).text


def test_start_run_with_good_inputs_opens_the_run(client_for, version, operator):
    response = client_for(operator).post(reverse("runs:start", args=[version.workflow_id]),
                                         {"input-period": "2026-11", "input-rows": "25"})
    run = Run.objects.get()
    assert response.status_code == 302 and response.url == reverse("runs:detail", args=[run.pk])
    assert run.inputs == {"period": "2026-11", "rows": 25} and run.started_by == operator


def test_start_run_with_bad_inputs_is_refused_naming_the_field(client_for, version, operator):
    response = client_for(operator).post(reverse("runs:start", args=[version.workflow_id]),
                                         {"input-period": "", "input-rows": "many"})
    assert response.status_code == 400
    assert "`rows` must be a whole number" in response.text and "`period` is required" in response.text
    assert not Run.objects.exists()


def test_viewer_cannot_start_runs(client_for, version, viewer):
    response = client_for(viewer).post(reverse("runs:start", args=[version.workflow_id]), {"input-period": "x"})
    assert response.status_code == 403 and not Run.objects.exists()


def test_artifacts_download_only_inside_the_run(client_for, paused_run, viewer, outsider, settings, tmp_path):
    settings.ARTIFACT_DIR = tmp_path
    folder = tmp_path / "runs" / str(paused_run.pk) / "extract" / "1"
    folder.mkdir(parents=True)
    (folder / "output.json").write_text('{"big": true}')
    (tmp_path / "secret.txt").write_text("no")
    url = reverse("runs:artifact", args=[paused_run.pk, f"runs/{paused_run.pk}/extract/1/output.json"])
    response = client_for(viewer).get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == b'{"big": true}'
    assert client_for(viewer).get(reverse("runs:artifact", args=[paused_run.pk, "secret.txt"])).status_code == 404
    assert client_for(outsider).get(url).status_code == 404
