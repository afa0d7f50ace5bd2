"""Retention of the audit log: each chain's oldest events are removed behind a signed checkpoint
(AuditPurge), so `verify_chain()` still proves everything kept is unchanged and complete.

Only an intact prefix is ever purged (every chain is verified first: a checkpoint must not bless
a rewritten event), and at least each chain's newest event stays. A chain's checkpoint is written
before any of its events go, so a purge that stops half way leaves chains that still verify;
running it again removes the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from apps.audit.log import canonical, hmac_sha256, latest_purges, purge_fields, record, signing_key, verify_chain
from apps.audit.models import AuditChainHead, AuditEvent, AuditPurge

DEFAULT_BATCH_SIZE = 5000


class AuditPurgeRefused(Exception):
    """A chain does not verify, so nothing was removed."""


@dataclass
class AuditPurgeReport:
    cutoff: datetime
    removed: int = 0
    through: dict[str, int] = field(default_factory=dict)  # chain -> events up to this position are gone


def purge_events(older_than: timedelta, *, batch_size: int = DEFAULT_BATCH_SIZE, now: datetime | None = None,
                 dry_run: bool = False) -> AuditPurgeReport:
    report = AuditPurgeReport(cutoff=(now or timezone.now()) - older_than)
    previous = latest_purges()
    due = {}
    for head in AuditChainHead.objects.filter(last_position__gte=2).order_by("chain"):
        first_kept = (AuditEvent.objects.filter(chain=head.chain, occurred_at__gte=report.cutoff)
                      .aggregate(first=Min("position"))["first"])
        through = min((first_kept or head.last_position) - 1, head.last_position - 1)
        done_through = previous[head.chain].through_position if head.chain in previous else 0
        if not dry_run:
            report.removed += _remove_through(head.chain, done_through, batch_size)  # what an interrupted purge left
        report.through[head.chain] = max(through, done_through)
        if through > done_through:
            due[head.chain] = through
    if dry_run or not due:
        if dry_run:
            report.removed = sum(AuditEvent.objects.filter(chain=chain, position__lte=through).count()
                                 for chain, through in report.through.items())
        return report
    verdict = verify_chain()
    if not verdict.ok:
        raise AuditPurgeRefused(f"The audit chain is broken at event #{verdict.first_broken_sequence} "
                                f"({verdict.reason}); nothing was purged. Run manage.py audit_verify.")
    for chain, through in due.items():
        _checkpoint(chain, through, previous.get(chain), report.cutoff)
        report.removed += _remove_through(chain, through, batch_size)
    return report


def _checkpoint(chain: str, through: int, previous: AuditPurge | None, cutoff: datetime) -> None:
    kept = AuditEvent.objects.filter(chain=chain)
    through_hash = kept.filter(position=through).values_list("event_hash", flat=True).first()
    with transaction.atomic():
        key_id, key = signing_key()
        removed_before = previous.events_removed if previous else 0
        checkpoint = AuditPurge(chain=chain, through_position=through, through_hash=through_hash, key_id=key_id,
                                signature="",
                                events_removed=removed_before + kept.filter(position__lte=through).count())
        checkpoint.signature = hmac_sha256(key, canonical(purge_fields(checkpoint)))
        checkpoint.save()
        record(None, "audit.purged", checkpoint,
               after={"chain": chain, "through_position": through, "cutoff": cutoff.isoformat()})


def _remove_through(chain: str, through: int, batch_size: int) -> int:
    removed = 0
    while True:
        with transaction.atomic():
            ids = list(AuditEvent.objects.filter(chain=chain, position__lte=through).order_by("position")
                       .values_list("pk", flat=True)[:batch_size])
            if not ids:
                return removed
            removed += AuditEvent.objects.filter(pk__in=ids).delete()[0]
