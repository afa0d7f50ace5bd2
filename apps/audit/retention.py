"""Retention of the audit log: the chain's oldest events are removed behind a signed checkpoint
(AuditPurge), so `verify_chain()` still proves everything kept is unchanged and complete.

Only an intact prefix is ever purged (it is verified first: a checkpoint must not bless a
rewritten event), and at least the newest event stays. The checkpoint is written before any
event goes, so a purge that stops half way leaves a chain that still verifies; running it again
removes the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from apps.audit.log import canonical, hmac_sha256, purge_fields, record, signing_key, verify_chain
from apps.audit.models import AuditChainHead, AuditEvent, AuditPurge

DEFAULT_BATCH_SIZE = 5000


class AuditPurgeRefused(Exception):
    """The chain does not verify, so nothing was removed."""


@dataclass
class AuditPurgeReport:
    cutoff: datetime
    through_sequence: int = 0
    removed: int = 0


def purge_events(older_than: timedelta, *, batch_size: int = DEFAULT_BATCH_SIZE, now: datetime | None = None,
                 dry_run: bool = False) -> AuditPurgeReport:
    report = AuditPurgeReport(cutoff=(now or timezone.now()) - older_than)
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None or head.last_sequence < 2:
        return report
    first_kept = AuditEvent.objects.filter(occurred_at__gte=report.cutoff).aggregate(first=Min("sequence"))["first"]
    through = min((first_kept or head.last_sequence) - 1, head.last_sequence - 1)
    previous = AuditPurge.objects.first()
    done_through = previous.through_sequence if previous else 0
    if not dry_run:
        report.removed = _remove_through(done_through, batch_size)  # what an interrupted purge left
    if through <= done_through:
        report.through_sequence = done_through
        return report
    report.through_sequence = through
    if dry_run:
        report.removed = AuditEvent.objects.filter(sequence__lte=through).count()
        return report
    verdict = verify_chain()
    if not verdict.ok:
        raise AuditPurgeRefused(f"The audit chain is broken at event #{verdict.first_broken_sequence} "
                                f"({verdict.reason}); nothing was purged. Run manage.py audit_verify.")
    through_hash = AuditEvent.objects.filter(sequence=through).values_list("event_hash", flat=True).first()
    with transaction.atomic():
        key_id, key = signing_key()
        removed_before = previous.events_removed if previous else 0
        checkpoint = AuditPurge(through_sequence=through, through_hash=through_hash, key_id=key_id, signature="",
                                events_removed=removed_before + AuditEvent.objects.filter(sequence__lte=through).count())
        checkpoint.signature = hmac_sha256(key, canonical(purge_fields(checkpoint)))
        checkpoint.save()
        record(None, "audit.purged", checkpoint, after={"through_sequence": through, "cutoff": report.cutoff.isoformat()})
    report.removed += _remove_through(through, batch_size)
    return report


def _remove_through(through: int, batch_size: int) -> int:
    removed = 0
    while True:
        with transaction.atomic():
            ids = list(AuditEvent.objects.filter(sequence__lte=through).order_by("sequence")
                       .values_list("pk", flat=True)[:batch_size])
            if not ids:
                return removed
            removed += AuditEvent.objects.filter(pk__in=ids).delete()[0]
