"""Two approvers deciding the same request at the same moment give exactly one outcome.

Only PostgreSQL has the row locks this is about (SQLite serializes every writer anyway); CI
always runs it there.
"""

import threading

import pytest
from django.db import close_old_connections, connection

from apps.approvals import services
from apps.approvals.models import ApprovalRequest, RequestState
from apps.runs.models import StepAttempt

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL (CI runs it there)"),
]


def test_simultaneous_approvals_enqueue_the_step_once(waiting_gate, approver, second_approver, monkeypatch):
    request = waiting_gate(quorum=1)
    sent = []
    from apps.runs import engine

    monkeypatch.setattr(engine.attempts, "send_on_commit", lambda attempt_id, *args, **kwargs: sent.append(attempt_id))
    start = threading.Barrier(2)
    outcomes = {}

    def decide(person):
        try:
            start.wait()
            services.decide_gate(person, ApprovalRequest.objects.get(pk=request.pk), "approve")
            outcomes[person.username] = "approved"
        except services.DecisionConflict as exc:
            outcomes[person.username] = str(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=decide, args=(person,)) for person in (approver, second_approver)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(v == "approved" for v in outcomes.values()) == [False, True]
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED and request.decisions.count() == 1
    assert StepAttempt.objects.filter(step_run__run=request.run, step_run__step_id="pay").count() == 1
    assert len(sent) == 1
