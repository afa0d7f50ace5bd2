"""Audit retention: the oldest events go behind a signed checkpoint; the chain still verifies,
a forged or edited checkpoint does not, and exported heads inside the purged range still pass."""

import json
from datetime import timedelta

import pytest

from apps.audit.heads import check_heads, signed_head
from apps.audit.log import chain_of, record, verify_chain
from apps.audit.models import AuditEvent, AuditPurge
from apps.audit.retention import AuditPurgeRefused, purge_events

pytestmark = pytest.mark.django_db


RETENTION = timedelta(days=400)


@pytest.fixture
def chain_of_ten(team):
    """Ten events; `later` is a moment RETENTION after the seventh, so the first six are past it."""
    for number in range(10):
        record(None, "test.event", object_type="test", object_id=number, team=team, after={"n": number})
    moments = list(AuditEvent.objects.order_by("sequence").values_list("occurred_at", flat=True))
    assert moments[5] < moments[6]
    return moments[6] + RETENTION


def test_old_events_go_and_the_rest_still_verifies(chain_of_ten, team):
    head_before = signed_head(verify_chain())
    report = purge_events(RETENTION, batch_size=4, now=chain_of_ten)
    assert (report.through, report.removed) == ({chain_of(team): 6}, 6)
    assert sorted(AuditEvent.objects.values_list("chain", "position")) == [
        ("platform", 1), *[(chain_of(team), position) for position in (7, 8, 9, 10)]]  # platform: the purge
    verdict = verify_chain()
    chain = verdict.chains[chain_of(team)]
    assert verdict.ok and chain.purged_through == 6 and chain.head_position == 10
    head = signed_head(verdict)
    assert (head["chains"][chain_of(team)]["position"], head["events"]) == (10, 5)
    old_head = json.dumps(head_before)
    heads = check_heads([old_head, json.dumps(head)])
    assert heads.problems == [] and heads.checked == 2


def test_an_edited_checkpoint_breaks_the_chain(chain_of_ten):
    purge_events(RETENTION, now=chain_of_ten)
    AuditPurge.objects.update(through_position=5)
    verdict = verify_chain()
    assert not verdict.ok and "not signed" in verdict.reason


def test_an_event_changed_before_the_purge_refuses_it_and_removes_nothing(chain_of_ten):
    changed = AuditEvent.objects.get(position=3)
    AuditEvent.objects.filter(pk=changed.pk).update(actor_label="someone-else")
    with pytest.raises(AuditPurgeRefused, match=f"broken at event #{changed.sequence} .*position 3"):
        purge_events(RETENTION, now=chain_of_ten)
    assert AuditEvent.objects.count() == 10 and not AuditPurge.objects.exists()


def test_a_purge_interrupted_half_way_is_finished_by_the_next(chain_of_ten, team, monkeypatch):
    from apps.audit import retention

    monkeypatch.setattr(retention, "_remove_through", lambda chain, through, batch_size: 0)
    purge_events(RETENTION, now=chain_of_ten)
    assert verify_chain().ok  # the checkpoint is written first; the old events are behind it
    monkeypatch.undo()
    report = purge_events(RETENTION, now=chain_of_ten)
    assert report.removed == 6 and not AuditEvent.objects.filter(position__lte=6, chain=chain_of(team)).exists()
    assert verify_chain().ok and AuditPurge.objects.count() == 1
