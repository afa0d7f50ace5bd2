"""Reminders a gate's `approval.remind` asks for (`remind: [1h, 10m]`: an hour and ten minutes
before it expires). One row per reminder; the expiry beat claims the due ones with a
compare-and-swap on `sent_at`, so a reminder goes out once however often, or however many
beats at once, the task runs. Escalation gives a request a new expiry, and its reminders again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from apps.approvals.models import ApprovalRequest, Reminder, RequestState


def schedule(request: ApprovalRequest, before: list[int]) -> None:
    """Plan the reminders of a request that expires, `before` seconds ahead of its expiry each
    (those that would fall before it opened are dropped; the spec's checks refuse them)."""
    if request.expires_at is None:
        return
    opened = request.created_at
    Reminder.objects.bulk_create([
        Reminder(request=request, before_seconds=seconds, remind_at=request.expires_at - timedelta(seconds=seconds))
        for seconds in sorted(set(before), reverse=True)
        if request.expires_at - timedelta(seconds=seconds) > opened
    ])


def reschedule(request: ApprovalRequest) -> None:
    """The request has a new expiry (it was escalated): every reminder is due again before it."""
    for reminder in request.reminders.all():
        reminder.remind_at, reminder.sent_at = request.expires_at - timedelta(seconds=reminder.before_seconds), None
        reminder.save(update_fields=["remind_at", "sent_at"])


def claim_due(now: datetime | None = None) -> list[Reminder]:
    """The reminders due at `now` that this caller won (and must send), each claimed once."""
    now = now or timezone.now()
    due = Reminder.objects.filter(sent_at__isnull=True, remind_at__lte=now, request__state=RequestState.PENDING,
                                  request__expires_at__gt=now)
    claimed = []
    for reminder in due.select_related("request"):
        if Reminder.objects.filter(pk=reminder.pk, sent_at__isnull=True).update(sent_at=now):
            claimed.append(reminder)
    return claimed
