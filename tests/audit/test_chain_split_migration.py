"""Migration 0004 splits the audit chain per team: events written before it (one chain, hashed
over their sequence) become the platform chain and verify unchanged, as do heads exported then;
new events of a team start that team's own chain."""

import hashlib
import hmac
import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from apps.audit.heads import check_heads
from apps.audit.log import canonical, chain_of, record, signing_key, verify_chain
from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("audit", "0003_purge_checkpoint")]


def _latest():
    return [key for key in MigrationExecutor(connection).loader.graph.leaf_nodes() if key[0] == "audit"]


def _old_chain(apps, team) -> dict:
    """Three events as the single chain wrote them, the head row, and a head exported then."""
    Event, Head = apps.get_model("audit", "AuditEvent"), apps.get_model("audit", "AuditChainHead")
    key_id, key = signing_key()
    previous_hash = "0" * 64
    for sequence in (1, 2, 3):
        data_hash = hashlib.sha256(canonical({"before": None, "after": {"n": sequence}}).encode()).hexdigest()
        event = Event(sequence=sequence, occurred_at=timezone.now(), actor_label="system", action="old.note",
                      object_type="test.note", object_id=str(sequence), team_id=team.pk, team_label=team.slug,
                      after={"n": sequence}, data_hash=data_hash, previous_hash=previous_hash, key_id=key_id)
        fields = [sequence, event.occurred_at.isoformat(), "system", "old.note", "test.note", str(sequence),
                  team.slug, data_hash, previous_hash, key_id]
        event.event_hash = previous_hash = hmac.digest(key, canonical(fields).encode(), "sha256").hex()
        event.save()
    Head.objects.create(pk=1, last_sequence=3, last_hash=previous_hash)
    head = {"sequence": 3, "event_hash": previous_hash, "events": 3, "exported_at": timezone.now().isoformat(),
            "key_id": key_id}
    return {**head, "signature": hmac.digest(key, canonical(head).encode(), "sha256").hex()}


def test_events_from_the_single_chain_verify_after_the_split(team):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        old_head = _old_chain(executor.loader.project_state(BEFORE).apps, team)
    finally:
        MigrationExecutor(connection).migrate(_latest())
    assert list(AuditEvent.objects.order_by("sequence").values_list("chain", "position")) == [
        ("platform", 1), ("platform", 2), ("platform", 3)]
    record(None, "new.note", object_type="test.note", object_id=4, team=team, after={"n": 4})
    new = AuditEvent.objects.get(action="new.note")
    assert (new.sequence, new.chain, new.position) == (4, chain_of(team), 1)
    verdict = verify_chain()
    assert verdict.ok and verdict.chains["platform"].head_position == 3 and verdict.keyed == 4
    heads = check_heads([json.dumps(old_head)])
    assert heads.problems == [] and heads.checked == 1
