"""Signed decision links, sent in notifications: they open a small decision page for one request
(what may be done through one is in `link_decisions`).

A link carries the request, its recipient (none for a chat channel) and its purpose, signed with
`django.core.signing` under its own salt, and expires after LINK_MAX_AGE. It is never authority:
the page needs a signed-in person, who must be an eligible decider (their own name or a
delegation), and deciding goes through `decide_gate` / `decide_checkpoint` with every rule of the
inbox. A decision taken through a link uses it up (`DecisionLinkUse`, unique by nonce).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.core import signing
from django.urls import NoReverseMatch, reverse

from apps.approvals.models import ApprovalRequest, DecisionLinkUse
from apps.notifications.services import absolute_url

SALT = "flowdeck.approvals.decision-link"
PURPOSE = "decide"
LINK_MAX_AGE = timedelta(hours=48)


class LinkRefused(Exception):
    """A link that cannot be used; `title` and the message are what the page says."""

    def __init__(self, title: str, message: str, status: int):
        super().__init__(message)
        self.title, self.status = title, status


@dataclass(frozen=True)
class DecisionLink:
    request_id: int
    recipient_id: int | None
    nonce: str


def token_for(request: ApprovalRequest, recipient=None) -> str:
    payload = {"r": request.pk, "u": recipient.pk if recipient is not None else None, "p": PURPOSE,
               "n": secrets.token_hex(8)}
    return signing.dumps(payload, salt=SALT, compress=True)


def url_for(request: ApprovalRequest, recipient=None) -> str:
    """The absolute link for `recipient` (None: a chat channel's), or "" when pages are not mounted."""
    try:
        return absolute_url(reverse("approvals:link", args=[token_for(request, recipient)]))
    except NoReverseMatch:  # a worker-only deployment
        return ""


def read(token: str) -> DecisionLink:
    """The link `token` stands for, if it is genuine, unexpired and unused."""
    try:
        payload = signing.loads(token, salt=SALT, max_age=LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise LinkRefused("This link has expired", f"Decision links work for {_hours(LINK_MAX_AGE)} hours. Open the "
                          f"request from your approval inbox instead.", 410) from None
    except signing.BadSignature:
        raise LinkRefused("This link is not valid", "It may have been cut short when it was copied. Open the request "
                          "from your approval inbox instead.", 404) from None
    if not isinstance(payload, dict) or payload.get("p") != PURPOSE:
        raise LinkRefused("This link is not a decision link", "Open the request from your approval inbox.", 404)
    link = DecisionLink(int(payload["r"]), payload.get("u"), str(payload["n"]))
    if DecisionLinkUse.objects.filter(nonce=link.nonce).exists():
        raise LinkRefused("This link was already used", "A decision was taken through it, and a link decides once. "
                          "Open the request from your approval inbox to see where it stands.", 410)
    return link


def _hours(age: timedelta) -> int:
    return int(age.total_seconds() // 3600)
