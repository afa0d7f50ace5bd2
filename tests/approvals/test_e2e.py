"""End to end with a real Celery worker: a run reaches a gate, an approver approves it in the
inbox page (posting as the page does), and the gated step runs."""

import pytest

from apps.approvals.models import ApprovalRequest
from apps.runs import engine
from apps.runs.models import RunState

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_approving_in_the_inbox_runs_the_gated_step(worker, wait_for, gated, operator, approver, client_for):
    run = wait_for(engine.start_run(operator, gated()), RunState.WAITING)
    request = ApprovalRequest.objects.get(run=run)
    client = client_for(approver)
    assert f'id="request-{request.pk}"' in client.get("/approvals/").content.decode()

    answer = client.post(f"/approvals/{request.pk}/decide/", {"verdict": "approve", "comment": ""},
                         HTTP_HX_REQUEST="true")

    assert answer.status_code == 200
    run = wait_for(run, RunState.SUCCEEDED, RunState.FAILED)
    assert run.state == RunState.SUCCEEDED
    assert run.step_runs.get(step_id="report").output == {"paid": 10}
