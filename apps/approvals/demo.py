"""The approvals of the demo's past runs (apps.runs.demo plays the runs and says who decided
what, when): gates approved by their quorum, checkpoints decided by an operator, written in two
bulk inserts with the fields `open_gate` and `open_checkpoint` would have set."""

from datetime import timedelta

from django.db import transaction

from apps.accounts.models import ApproverGroup
from apps.approvals.models import ApprovalRequest, Decision, OnExpiry, RequestKind, RequestState
from apps.approvals.services import WARN_AT_SHARE_LEFT
from apps.runs.signatures import error_signature


@transaction.atomic
def load_decisions(decisions) -> int:
    """Write the decided requests of `decisions` (apps.runs.demo.PastDecision); returns how many."""
    groups = {(group.team_id, group.slug): group for group in ApproverGroup.objects.all()}
    requests = []
    for past in decisions:
        approval = past.approval or {}
        timeout = approval.get("timeout") if past.kind == "gate" else None
        expires_at = past.opened_at + timedelta(seconds=timeout) if timeout else None
        gate = past.kind == "gate"
        requests.append(ApprovalRequest(
            kind=RequestKind.GATE if gate else RequestKind.CHECKPOINT,
            state=RequestState.APPROVED if gate else RequestState.DECIDED, outcome=past.verdict,
            team_id=past.run.team_id, run=past.run, step_run=past.step_run,
            group=groups.get((past.run.team_id, approval.get("group"))) if gate else None,
            quorum=max(1, int(approval.get("quorum") or 1)) if gate else 1, timeout_seconds=timeout,
            expires_at=expires_at, on_expiry=approval.get("on_expiry") or OnExpiry.REJECT,
            warn_at=expires_at - timedelta(seconds=timeout * WARN_AT_SHARE_LEFT) if timeout else None,
            risky=gate, error_type=past.error_type, error_message=past.error_message,
            error_signature=error_signature(past.error_type, past.error_message) if past.error_type else "",
            created_at=past.opened_at, decided_at=past.decided_at))
    ApprovalRequest.objects.bulk_create(requests)
    Decision.objects.bulk_create([
        Decision(request=request, person=person, verdict=past.verdict, reason_code=past.reason_code,
                 comment=past.comment, decided_at=past.decided_at - timedelta(minutes=4 * (len(past.people) - 1 - n)))
        for request, past in zip(requests, decisions) for n, person in enumerate(past.people)])
    return len(requests)
