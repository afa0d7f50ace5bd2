"""The inbox, a request's page, in-place and bulk decisions, the history, and the same through the API."""

import pytest
from django.core.cache import cache

from apps.approvals.context_processors import inbox_count
from apps.approvals.models import ApprovalRequest, RequestState
from apps.runs import engine
from apps.runs.models import StepState

pytestmark = pytest.mark.django_db


def test_inbox_lists_what_the_approver_may_decide(waiting_gate, approver, client_for):
    request = waiting_gate()
    page = client_for(approver).get("/approvals/")
    assert page.status_code == 200
    assert f'id="request-{request.pk}"' in page.content.decode()
    assert "payroll" in page.content.decode()


def test_inbox_pages_most_urgent_first(waiting_gate, approver, client_for, monkeypatch):
    monkeypatch.setattr("apps.approvals.views.PAGE_SIZE", 1)
    older, newer = waiting_gate(), waiting_gate(name="payroll-2")
    client = client_for(approver)
    first = client.get("/approvals/").content.decode()
    assert "2 requests waiting for you" in first and "Page 1 of 2" in first
    assert f'id="request-{older.pk}"' in first and f'id="request-{newer.pk}"' not in first
    second = client.get("/approvals/?page=2").content.decode()
    assert "Page 2 of 2" in second and f'id="request-{newer.pk}"' in second
    assert "Page 2 of 2" in client.get("/approvals/?page=5").content.decode()


def test_inbox_workflow_filter_offers_the_workflows_of_its_most_urgent_requests(waiting_gate, approver, client_for,
                                                                               monkeypatch):
    monkeypatch.setattr("apps.approvals.views.WORKFLOW_CHOICES_FROM", 1)
    older, newer = waiting_gate(), waiting_gate(name="payroll-2")
    client = client_for(approver)
    page = client.get("/approvals/").content.decode()
    assert f'<option value="{older.run.workflow_id}">payroll</option>' in page
    assert "payroll-2</option>" not in page
    # Past the first requests, a workflow is still a filter by link.
    filtered = client.get(f"/approvals/?workflow={newer.run.workflow_id}").content.decode()
    assert f'id="request-{newer.pk}"' in filtered and f'id="request-{older.pk}"' not in filtered
    monkeypatch.setattr("apps.approvals.views.WORKFLOW_CHOICES_FROM", 1000)
    assert "payroll-2</option>" in client.get("/approvals/").content.decode()


def test_inbox_pages_counts_and_offers_workflows_past_its_first_requests(waiting_gate, approver, client_for,
                                                                         monkeypatch):
    monkeypatch.setattr("apps.approvals.views.PAGE_SIZE", 1)
    monkeypatch.setattr("apps.approvals.views.WORKFLOW_CHOICES_FROM", 2)
    requests = [waiting_gate(), waiting_gate(name="payroll-2"), waiting_gate(name="payroll-3")]
    client = client_for(approver)
    # Pages among the first requests, whose workflows the filter offers, and the page past them.
    for number, shown in enumerate(requests, start=1):
        page = client.get(f"/approvals/?page={number}").text
        assert f"Page {number} of 3" in page and "3 requests waiting for you" in page
        assert [pk for pk in (r.pk for r in requests) if f'id="request-{pk}"' in page] == [shown.pk]
        assert "payroll-2</option>" in page and "payroll-3</option>" not in page
    assert "Page 3 of 3" in client.get("/approvals/?page=9").text
    # Filtered to one workflow, the filter still offers the others.
    filtered = client.get(f"/approvals/?workflow={requests[0].run.workflow_id}").text
    assert "1 request waiting for you with these filters" in filtered and "payroll-2</option>" in filtered


def test_the_inbox_page_reads_its_rule_once(waiting_gate, approver, client_for):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    cache.clear()
    waiting_gate(), waiting_gate(name="payroll-2")
    client = client_for(approver)
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/approvals/").text
    assert "2 requests waiting for you" in page and 'aria-label="2 waiting for you"' in page
    # The rule's test of the person's own decisions, in the page, its count, its workflow
    # choices and the navigation's badge: once for all of them.
    assert sum('"approvals_decision"' in query["sql"] for query in queries.captured_queries) == 1


def test_inbox_is_empty_for_people_who_cannot_decide(waiting_gate, operator, viewer, client_for):
    waiting_gate()
    for person in (operator, viewer):
        page = client_for(person).get("/approvals/")
        assert "Nothing waits for you" in page.content.decode()


def test_outsider_gets_404_on_a_request_of_another_team(waiting_gate, outsider, client_for):
    request = waiting_gate()
    assert client_for(outsider).get(f"/approvals/{request.pk}/").status_code == 404
    assert client_for(outsider).post(f"/approvals/{request.pk}/decide/", {"verdict": "approve"}).status_code == 404


def test_inbox_count_badge(waiting_gate, approver, operator, rf):
    cache.clear()
    waiting_gate()
    waiting_gate(name="payroll-2")
    request = rf.get("/")
    request.user = approver
    assert inbox_count(request) == {"approvals_inbox_count": 2}
    request.user = operator
    assert inbox_count(request) == {"approvals_inbox_count": 0}


def test_badge_may_lag_briefly_but_the_inbox_and_the_persons_own_decision_do_not(waiting_gate, approver,
                                                                                 client_for):
    cache.clear()
    first, _ = waiting_gate(), waiting_gate(name="payroll-2")
    client = client_for(approver)
    assert 'aria-label="2 waiting for you"' in client.get("/runs/").text
    client.post(f"/approvals/{first.pk}/decide/", {"verdict": "approve"})
    assert 'aria-label="1 waiting for you"' in client.get("/runs/").text
    waiting_gate(name="payroll-3")
    # Others' requests reach the badge within a few seconds, or when the person opens the inbox:
    # it counts now, and the badge with it.
    assert 'aria-label="1 waiting for you"' in client.get("/runs/").text
    inbox = client.get("/approvals/").text
    assert 'aria-label="2 waiting for you"' in inbox and "2 requests waiting for you" in inbox
    assert 'aria-label="2 waiting for you"' in client.get("/runs/").text
    # A filtered list counts only what matches: the badge keeps the whole inbox's count.
    assert "1 request waiting for you with these filters" in client.get("/approvals/?q=payroll-3").text
    assert 'aria-label="2 waiting for you"' in client.get("/runs/").text


def test_htmx_poll_returns_only_the_list(waiting_gate, approver, client_for):
    waiting_gate()
    fragment = client_for(approver).get("/approvals/", HTTP_HX_REQUEST="true")
    text = fragment.content.decode()
    assert text.lstrip().startswith('<div id="inbox-list"') and "<html" not in text


def test_request_page_shows_the_context_to_decide(gated, team, author, approver, operator, drive, client_for):
    from tests.runs.factories import make_version, step

    first = gated()
    first_run = drive(engine.start_run(operator, first))
    from apps.approvals import services

    services.decide_gate(approver, ApprovalRequest.objects.get(run=first_run), "approve")
    drive(first_run)
    changed = make_version(team, [step("prepare", params={"rows": 3}),
                                  step("pay", needs=["prepare"], params={"amount": 99},
                                       approval={"group": "billing-approvers", "quorum": 1})],
                           name="payroll", author=author)
    run = drive(engine.start_run(operator, changed, inputs={}))
    request = ApprovalRequest.objects.get(run=run)
    text = client_for(approver).get(f"/approvals/{request.pk}/").content.decode()
    assert "v1 (run" in text                      # compared with the last approved run
    assert "amount" in text and "99" in text     # the step's parameters
    assert "&quot;rows&quot;: 3" in text          # the upstream output of `prepare`, as JSON
    assert 'name="verdict" value="approve"' in text


def test_page_says_why_the_starter_cannot_decide(gated, approver, drive, client_for):
    run = drive(engine.start_run(approver, gated()))
    request = ApprovalRequest.objects.get(run=run)
    text = client_for(approver).get(f"/approvals/{request.pk}/").content.decode()
    assert "separation of duties" in text and 'value="approve"' not in text


def test_approve_in_place_from_the_inbox(waiting_gate, approver, client_for):
    request = waiting_gate()
    answer = client_for(approver).post(f"/approvals/{request.pk}/decide/", {"verdict": "approve"},
                                       HTTP_HX_REQUEST="true")
    text = answer.content.decode()
    assert answer.status_code == 200 and "nothing is left to decide" in text
    assert f"approved: step pay queued, run #{request.run_id} resumed" in text
    assert f'href="/runs/{request.run_id}/"' in text
    assert request.run.step_runs.get(step_id="pay").state == StepState.QUEUED


def test_reject_without_comment_on_the_page_is_refused_with_a_reason(waiting_gate, approver, client_for):
    request = waiting_gate()
    answer = client_for(approver).post(f"/approvals/{request.pk}/decide/", {"verdict": "reject", "comment": ""})
    assert answer.status_code == 400 and "needs a comment" in answer.content.decode()
    request.refresh_from_db()
    assert request.state == RequestState.PENDING


def test_viewer_gets_403_when_deciding(waiting_gate, viewer, client_for):
    request = waiting_gate()
    answer = client_for(viewer).post(f"/approvals/{request.pk}/decide/", {"verdict": "approve"})
    assert answer.status_code == 403


def test_bulk_approve_decides_each_request_and_reports_refusals(gated, approver, operator, drive, client_for):
    mine = ApprovalRequest.objects.get(run=drive(engine.start_run(operator, gated(name="a"))))
    other = ApprovalRequest.objects.get(run=drive(engine.start_run(operator, gated(name="b"))))
    own = ApprovalRequest.objects.get(run=drive(engine.start_run(approver, gated(name="c"))))
    answer = client_for(approver).post("/approvals/bulk/", {"ids": [mine.pk, other.pk, own.pk], "verdict": "approve"},
                                       follow=True)
    states = dict(ApprovalRequest.objects.values_list("pk", "state"))
    assert states[mine.pk] == states[other.pk] == RequestState.APPROVED
    assert states[own.pk] == RequestState.PENDING
    assert "separation of duties" in answer.content.decode()


def test_history_keeps_decided_requests(waiting_gate, approver, client_for):
    from apps.approvals import services

    request = waiting_gate()
    services.decide_gate(approver, request, "reject", "not this month")
    page = client_for(approver).get("/approvals/history/")
    assert "not this month" in page.content.decode()
    assert f"#{request.pk}" in page.content.decode()


def test_history_pages_latest_first_past_its_count_cap(waiting_gate, approver, client_for, monkeypatch):
    from apps.approvals import services

    monkeypatch.setattr("apps.approvals.views.PAGE_SIZE", 1)
    monkeypatch.setattr("apps.approvals.views.HISTORY_COUNT_CAP", 1)
    first, second = waiting_gate(), waiting_gate(name="payroll-2")
    services.decide_gate(approver, first, "reject", "first decided")
    services.decide_gate(approver, second, "reject", "second decided")
    client = client_for(approver)
    latest = client.get("/approvals/history/").content.decode()
    assert "Page 1 of many" in latest and "second decided" in latest and "first decided" not in latest
    older = client.get("/approvals/history/?page=2").content.decode()
    assert "first decided" in older and "Previous" in older and "Next" not in older


def test_api_lists_and_decides(waiting_gate, approver, second_approver, api_for):
    request = waiting_gate(quorum=2)
    api = api_for(approver)
    listed = api.get("/api/v1/approvals").json()
    assert [r["id"] for r in listed["results"]] == [request.pk]
    answer = api.post(f"/api/v1/approvals/{request.pk}/decide", {"verdict": "approve"}, format="json")
    assert answer.status_code == 200 and answer.json()["state"] == "pending"
    again = api.post(f"/api/v1/approvals/{request.pk}/decide", {"verdict": "approve"}, format="json")
    assert again.status_code == 409
    rejected = api_for(second_approver).post(f"/api/v1/approvals/{request.pk}/decide", {"verdict": "reject"},
                                             format="json")
    assert rejected.status_code == 400 and "comment" in rejected.json()["detail"]


def test_api_refuses_the_run_starter_with_403(gated, approver, drive, api_for):
    request = ApprovalRequest.objects.get(run=drive(engine.start_run(approver, gated())))
    answer = api_for(approver).post(f"/api/v1/approvals/{request.pk}/decide", {"verdict": "approve"}, format="json")
    assert answer.status_code == 403


def test_bulk_retry_of_checkpoints_needs_a_reason_and_skips_requests_outside_your_teams(
        team, author, operator, drive, client_for):
    from tests.runs.factories import make_version, step

    version = make_version(team, [step("load", "test.fail", on_failure="pause")], name="loader", author=author)
    request = ApprovalRequest.objects.get(run=drive(engine.start_run(author, version)), kind="checkpoint")
    client = client_for(operator)
    refused = client.post("/approvals/bulk/", {"ids": [request.pk], "verdict": "retry"}, follow=True)
    assert "Pick a reason" in refused.content.decode()
    answer = client.post("/approvals/bulk/", {"ids": [request.pk, 999999], "verdict": "retry",
                                              "reason_code": "transient", "comment": "network blip"}, follow=True)
    text = answer.content.decode()
    assert "#999999: not found in your teams" in text and "1 request(s) decided" in text
    request.refresh_from_db()
    assert request.state == RequestState.DECIDED and request.outcome == "retry"
