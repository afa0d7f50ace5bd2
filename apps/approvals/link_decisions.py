"""Deciding through a signed decision link (`links`): who may use an open link, the verdicts
they may give, and the decision itself, through `decide_gate` / `decide_checkpoint` with every
rule of the inbox. The link is used up only by a recorded decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from apps.approvals import gate_forms, services
from apps.approvals.links import DecisionLink, LinkRefused, read
from apps.approvals.models import (
    CHECKPOINT_CHOICES,
    ApprovalRequest,
    DecisionLinkUse,
    RequestKind,
    Verdict,
)


@dataclass
class Choice:
    verdict: str
    label: str
    on_behalf_of: object  # the delegator whose authority it uses, or None


def choices_for(user, request: ApprovalRequest) -> list[Choice]:
    """The verdicts `user` may give on `request` now, each with whose authority it uses."""
    if not request.is_open:
        return []
    verdicts = (Verdict.APPROVE, Verdict.REJECT) if request.kind == RequestKind.GATE else CHECKPOINT_CHOICES
    found = []
    for verdict in verdicts:
        on_behalf_of = services.acting_for(user, request, verdict)
        if not services.refusal(user, request, verdict, on_behalf_of):
            found.append(Choice(verdict, Verdict(verdict).label, on_behalf_of))
    return found


def open_link(user, token: str) -> tuple[DecisionLink, ApprovalRequest]:
    """The link and its request for signed-in `user`: 404 outside their teams; refused when the
    link was sent to someone else and `user` cannot decide the request either."""
    link = read(token)
    request = services.get_request_for_user(user, link.request_id)
    if link.recipient_id != user.pk and request.is_open and not choices_for(user, request):
        raise LinkRefused("This link is not for you", "It was sent to another person, and you cannot decide this "
                          "request. Open your approval inbox to see what waits for you.", 403)
    return link, request


def decide(user, token: str, *, verdict: str, comment: str, reason_code: str = "",
           gate_fields: dict | None = None) -> ApprovalRequest:
    """Decide through a link: the same decision functions and rules as the inbox (`verdict` is
    "approve:<option>" for a gate's option, `gate_fields` its posted form); the link is used up
    only when the decision is recorded (a refused one rolls its use back)."""
    with transaction.atomic():
        link, request = open_link(user, token)
        try:
            with transaction.atomic():
                DecisionLinkUse.objects.create(nonce=link.nonce, request=request, person=user)
        except IntegrityError:
            raise LinkRefused("This link was already used", "Someone decided through it a moment ago.", 410) from None
        verdict, _, option = verdict.partition(":")
        on_behalf_of = services.acting_for(user, request, verdict)
        if request.kind == RequestKind.GATE:
            return services.decide_gate(user, request, verdict, comment, option=option, on_behalf_of=on_behalf_of,
                                        form_values=gate_forms.submitted_values(request, gate_fields or {}))
        return services.decide_checkpoint(user, request, verdict, reason_code=reason_code, comment=comment,
                                          on_behalf_of=on_behalf_of)
