"""The first failure, not the cascade: failures grouped by root, decided once, each member on its own."""

import pytest
from django.urls import reverse

from apps.accounts.models import Membership
from apps.approvals.models import ApprovalRequest, Decision, RequestState
from apps.audit.models import AuditEvent
from apps.incidents.groups import failure_groups
from apps.runs import engine
from apps.runs.models import RunState, StepState, Trigger
from tests.runs.factories import decide, make_version, step

pytestmark = pytest.mark.django_db

DECISION = {"reason_code": "data_fixed", "comment": "net_pay is back in the payslip export"}


@pytest.fixture
def five_failing(team, author, operator, drive):
    """Five runs of payroll-run paused at check_payslips with one error; returns their checkpoints."""
    version = make_version(team, [step("load", "test.echo"),
                                  step("check_payslips", "test.fail", needs=["load"], on_failure="pause",
                                       params={"message": "KeyError: net_pay"})],
                           name="payroll-run", author=author)
    runs = [drive(engine.start_run(operator, version)) for _ in range(5)]
    assert {run.state for run in runs} == {RunState.PAUSED}
    return list(ApprovalRequest.objects.filter(run__in=runs, kind="checkpoint").order_by("pk"))


def _only_group(user):
    groups = failure_groups(user)
    assert len(groups) == 1
    return groups[0]


def test_five_runs_failing_with_one_signature_form_one_group_of_five(five_failing, operator):
    group = _only_group(operator)
    assert group.runs == 5 and sorted(group.checkpoint_ids) == [c.pk for c in five_failing]
    assert (group.root.workflow, group.root.step_id) == ("payroll-run", "check_payslips")
    assert group.root.signature == "StepError: KeyError: net_pay"
    assert group.downstream == 0 and group.incident_id is not None


def test_the_incidents_list_and_home_show_one_row_per_group(five_failing, operator, client_for):
    client = client_for(operator)
    listed = client.get(reverse("incidents:list")).content.decode()
    assert listed.count('class="failure-group"') == 1
    assert "<strong>5 runs</strong> · payroll-run check_payslips · StepError: KeyError: net_pay</a>" in listed
    assert "in a group of 5 runs" in listed  # the incident the five joined links its group
    home = client.get("/").content.decode()
    assert f'hx-get="{reverse("home-failing")}"' in home  # the panel loads once the page shows
    panel = client.get(reverse("home-failing")).content.decode()
    assert panel.count('class="failure-group"') == 1 and "<strong>5 runs</strong>" in panel


def test_homes_groups_follow_a_decision_and_a_new_failure_at_once(five_failing, operator, drive, client_for):
    client = client_for(operator)
    assert "<strong>5 runs</strong>" in client.get(reverse("home-failing")).text
    decide(operator, five_failing[0].step_run, "retry")
    assert "<strong>4 runs</strong>" in client.get(reverse("home-failing")).text
    drive(engine.start_run(operator, five_failing[0].run.version))
    drive(engine.start_run(operator, five_failing[0].run.version))
    assert "<strong>6 runs</strong>" in client.get(reverse("home-failing")).text


def test_a_group_decision_retries_all_five_each_audited_on_its_own(five_failing, operator, client_for):
    key = _only_group(operator).key
    client = client_for(operator)
    page = client.get(reverse("incidents:group", args=[key])).content.decode()
    assert all(f'id="member-{c.pk}"' in page for c in five_failing)
    asked = client.post(reverse("incidents:group-decide", args=[key]),
                        {"verdict": "retry", **DECISION, "ids": [c.pk for c in five_failing]})
    assert "Confirm: retry 5 failed steps" in asked.content.decode()
    assert not ApprovalRequest.objects.filter(pk__in=[c.pk for c in five_failing]).exclude(
        state=RequestState.PENDING).exists()  # asked, nothing decided yet
    done = client.post(reverse("incidents:group-decide", args=[key]),
                       {"verdict": "retry", **DECISION, "confirm": "yes", "ids": [c.pk for c in five_failing]})
    text = done.content.decode()
    assert done.status_code == 200 and text.count("<strong>decided</strong>") == 5 and "refused" not in text
    assert set(ApprovalRequest.objects.filter(pk__in=[c.pk for c in five_failing])
               .values_list("state", "outcome")) == {(RequestState.DECIDED, "retry")}
    audited = AuditEvent.objects.filter(action="approval.decision.retry", actor=operator)
    assert sorted(int(pk) for pk in audited.values_list("object_id", flat=True)) == [c.pk for c in five_failing]
    retried = AuditEvent.objects.filter(action="step.retried", actor=operator).values_list("object_id", flat=True)
    assert sorted(int(pk) for pk in retried) == sorted(c.step_run_id for c in five_failing)
    assert failure_groups(operator) == []  # nothing of the group waits any more


def test_a_member_already_decided_is_refused_unchanged_while_the_others_proceed(
        five_failing, operator, make_user, team, api_for):
    colleague = make_user("olive-operator")
    Membership.objects.create(user=colleague, team=team, role="operator")
    key = _only_group(operator).key
    seen = [c.pk for c in five_failing]  # what the operator saw on the group page
    first = five_failing[0]
    decide(colleague, first.step_run, "skip")  # decided meanwhile by a colleague
    answer = api_for(operator).post(f"/api/v1/incidents/groups/{key}/decide",
                                    {"verdict": "abort", **DECISION, "confirm": True, "ids": seen}, format="json")
    assert answer.status_code == 200
    results = {r["request_id"]: r for r in answer.json()["results"]}
    assert not results[first.pk]["ok"] and "already decided" in results[first.pk]["message"]
    assert all(results[pk]["ok"] for pk in seen[1:])
    first.refresh_from_db()
    assert (first.state, first.outcome) == (RequestState.DECIDED, "skip")
    assert list(Decision.objects.filter(request=first).values_list("person__username", flat=True)) == [
        "olive-operator"]
    first.step_run.refresh_from_db()
    assert first.step_run.state == StepState.SKIPPED
    assert set(ApprovalRequest.objects.filter(pk__in=seen[1:]).values_list("outcome", flat=True)) == {"abort"}


def test_skip_or_abort_all_needs_a_confirmation_and_names_the_risky_ones(five_failing, operator, api_for,
                                                                         client_for):
    ApprovalRequest.objects.filter(pk=five_failing[2].pk).update(risky=True)
    key = _only_group(operator).key
    refused = api_for(operator).post(f"/api/v1/incidents/groups/{key}/decide", {"verdict": "skip", **DECISION},
                                     format="json")
    assert refused.status_code == 400 and "confirm" in refused.json()["detail"]
    asked = client_for(operator).post(reverse("incidents:group-decide", args=[key]), {"verdict": "skip", **DECISION})
    text = asked.content.decode()
    assert "Confirm: skip 5 failed steps" in text and "1 of them is a risky step" in text
    assert f"#{five_failing[2].pk}</a> payroll-run / <code>check_payslips</code>" in text
    assert not ApprovalRequest.objects.exclude(state=RequestState.PENDING).exists()


def test_downstream_runs_join_the_upstream_failure_and_another_teams_member_is_refused(
        team, other_team, author, operator, drive, client_for):
    """Runs started after an upstream run failed (an `after:` trigger) are grouped under that
    run's failure; the operator is only a viewer of People Ops, so its run stays paused."""
    Membership.objects.create(user=operator, team=other_team, role="viewer")
    upstream_version = make_version(team, [step("close", "test.fail", params={"message": "ledger is locked"})],
                                    name="ledger-close", author=author)
    upstream = drive(engine.start_run(operator, upstream_version))
    assert upstream.state == RunState.FAILED
    started_after = {"trigger": Trigger.UPSTREAM, "trigger_detail": {"upstream_run": upstream.pk}}
    payroll = make_version(team, [step("check", "test.fail", on_failure="pause",
                                       params={"message": "no ledger rows for 2026-12"})], name="payroll-run")
    people = make_version(other_team, [step("sync", "test.fail", on_failure="pause",
                                            params={"message": "ledger empty"})], name="people-sync")
    runs = [drive(engine.start_run(None, payroll, **started_after)) for _ in range(4)]
    runs.append(drive(engine.start_run(None, people, **started_after)))
    group = _only_group(operator)
    assert group.runs == 5 and group.downstream == 5
    assert (group.root.workflow, group.root.step_id, group.root.run_id) == ("ledger-close", "close", upstream.pk)
    assert {m.cause for m in group.members} == {f"upstream run #{upstream.pk} (ledger-close) failed at close"}
    client = client_for(operator)
    done = client.post(reverse("incidents:group-decide", args=[group.key]),
                       {"verdict": "retry", **DECISION, "confirm": "yes"}).content.decode()
    assert done.count("<strong>decided</strong>") == 4 and done.count("<strong>refused</strong>") == 1
    assert "Only people with the operator role in People Ops can retry this step" in done
    other = ApprovalRequest.objects.get(run=runs[-1], kind="checkpoint")
    assert other.state == RequestState.PENDING and not other.decisions.exists()
    assert set(ApprovalRequest.objects.filter(run__in=runs[:4]).values_list("outcome", flat=True)) == {"retry"}


def test_a_step_that_ran_after_its_upstream_step_failed_is_grouped_under_that_step(team, operator, drive):
    version = make_version(team, [step("extract", "test.fail", on_failure="continue",
                                       params={"message": "HTTP 503 from the bank"}),
                                  step("report", "test.fail", needs=["extract"], on_failure="pause",
                                       params={"message": "KeyError: rows"})], name="bank-report")
    run = drive(engine.start_run(operator, version))
    assert run.state == RunState.PAUSED
    group = _only_group(operator)
    assert (group.root.step_id, group.root.signature) == ("extract", "StepError: HTTP <n> from the bank")
    assert [m.cause for m in group.members] == ["step extract failed before it"]


def test_a_group_nobody_may_see_is_not_found(five_failing, outsider, client_for):
    key = failure_groups(five_failing[0].run.started_by)[0].key
    assert client_for(outsider).get(reverse("incidents:group", args=[key])).status_code == 404
    assert failure_groups(outsider) == []


def test_failures_of_many_workflows_are_grouped_with_one_read_of_their_specs(team, author, operator, drive,
                                                                            django_assert_max_num_queries):
    from apps.workflows import plan

    for n in range(6):
        version = make_version(team, [step("load", "test.echo"),
                                      step("check", "test.fail", needs=["load"], on_failure="pause")],
                               name=f"payroll-{n}", author=author)
        drive(engine.start_run(operator, version))
    plan._plans.clear()  # a process that has not built these plans yet, as after a restart
    failure_groups(operator)
    plan._plans.clear()
    with django_assert_max_num_queries(8):  # checkpoints, failed steps, specs, attempts, incidents, scope
        assert len(failure_groups(operator)) == 6
