"""Audit events. Rows are only ever inserted (by `apps.audit.log.record`), never updated; retention
removes the oldest behind a signed checkpoint (`apps.audit.retention`).

Each team's events form their own chain (`chain` "team:<id>"), events with no team the platform
chain, so unrelated teams never wait on one lock. Events written before chains were split stay
in the platform chain, at the positions they were written at."""

from django.conf import settings
from django.db import models
from django.utils import timezone

PLATFORM_CHAIN = "platform"


class AuditEvent(models.Model):
    # The order events were written in, across chains (drawn without a lock; not hashed).
    sequence = models.PositiveBigIntegerField(unique=True)
    chain = models.CharField(max_length=40, default=PLATFORM_CHAIN)
    # 1, 2, 3 ... along the chain: hashed, so a missing event shows as a gap.
    position = models.PositiveBigIntegerField()
    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept beside the foreign key so the chain still verifies after a person is deleted.
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=80, db_index=True)
    object_type = models.CharField(max_length=80, db_index=True)
    object_id = models.CharField(max_length=64, db_index=True)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    team_label = models.CharField(max_length=120, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    # sha256 of the data the action acted on (before + after); the HMAC-SHA256 of the whole event and
    # the previous hash under the key `key_id` names (plain sha256 for events written before keying,
    # whose key_id is empty).
    data_hash = models.CharField(max_length=64)
    previous_hash = models.CharField(max_length=64)
    event_hash = models.CharField(max_length=64, unique=True)
    key_id = models.CharField(max_length=16, blank=True, default="")

    class Meta:
        ordering = ["-sequence"]
        constraints = [models.UniqueConstraint(fields=["chain", "position"], name="audit_event_chain_position")]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.actor_label} {self.action} {self.object_type}:{self.object_id}"


class AuditChainHead(models.Model):
    """One row per chain, locked while appending, so concurrent writers extend a chain one at a time."""

    chain = models.CharField(max_length=40, unique=True, default=PLATFORM_CHAIN)
    last_position = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)


class AuditPurge(models.Model):
    """A signed checkpoint left where retention removed a chain's oldest events: the chain is
    verified from the event after `through_position`, whose previous hash must be `through_hash`.
    The HMAC (key `key_id` of FLOWDECK_AUDIT_KEYS) over these fields means nobody without the key
    can cut the chain and leave a checkpoint that passes."""

    chain = models.CharField(max_length=40, default=PLATFORM_CHAIN)
    through_position = models.PositiveBigIntegerField()
    through_hash = models.CharField(max_length=64)
    events_removed = models.PositiveBigIntegerField()
    purged_at = models.DateTimeField(default=timezone.now)
    key_id = models.CharField(max_length=16)
    signature = models.CharField(max_length=64)

    class Meta:
        ordering = ["-through_position"]
        constraints = [models.UniqueConstraint(fields=["chain", "through_position"], name="audit_purge_chain_position")]

    def __str__(self) -> str:
        return f"{self.chain} events up to position {self.through_position} purged {self.purged_at:%Y-%m-%d}"
