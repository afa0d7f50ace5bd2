"""One audit chain per team: teams' events chain separately, each chain verifies (and breaks) on
its own, retention leaves a checkpoint per chain, and events from before the split still verify."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.audit.heads import check_heads, signed_head
from apps.audit.log import chain_of, record, verify_chain
from apps.audit.models import AuditEvent, AuditPurge


def _write(team, count: int, start: int = 0) -> None:
    for number in range(start, start + count):
        record(None, "note.written", object_type="test.note", object_id=number, team=team, after={"n": number})


def _chain(team) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(chain=chain_of(team)).order_by("position"))


@pytest.fixture
def two_teams(team, other_team):
    """Three events of each team interleaved, and one with no team."""
    for number in range(3):
        _write(team, 1, number)
        _write(other_team, 1, number)
    record(None, "platform.note", object_type="test.note", object_id=0)
    return team, other_team


def test_two_teams_events_chain_separately_and_both_verify(two_teams):
    billing, people = two_teams
    for team in (billing, people):
        events = _chain(team)
        assert [event.position for event in events] == [1, 2, 3]
        assert {event.team_label for event in events} == {team.slug}
        assert [event.previous_hash for event in events[1:]] == [event.event_hash for event in events[:-1]]
    # The global sequence still orders everything as it was written, across chains.
    assert list(AuditEvent.objects.order_by("sequence").values_list("chain", flat=True)) == [
        chain_of(billing), chain_of(people)] * 3 + ["platform"]
    verdict = verify_chain()
    assert verdict.ok and verdict.events_checked == 7
    assert {name: chain.head_position for name, chain in verdict.chains.items()} == {
        chain_of(billing): 3, chain_of(people): 3, "platform": 1}


def test_a_tampered_event_is_found_and_names_its_chain(two_teams):
    billing, people = two_teams
    changed = _chain(people)[1]
    AuditEvent.objects.filter(pk=changed.pk).update(action="note.deleted")
    verdict = verify_chain()
    assert not verdict.ok and verdict.first_broken_sequence == changed.sequence
    assert [chain.name for chain in verdict.broken] == [chain_of(people)]
    assert verdict.chains[chain_of(billing)].ok and verdict.chains[chain_of(billing)].head_position == 3
    with pytest.raises(CommandError) as refused:
        call_command("audit_verify")
    message = str(refused.value)
    assert "1 of 3 chains" in message
    assert f"chain {chain_of(people)} (team people-ops): event #{changed.sequence} (position 2)" in message


def test_an_event_moved_to_another_teams_chain_is_detected(two_teams):
    billing, people = two_teams
    # Appended to billing's chain as if it were its fourth event, hashes untouched.
    moved = _chain(people)[2]
    AuditEvent.objects.filter(pk=moved.pk).update(chain=chain_of(billing), position=4,
                                                   previous_hash=_chain(billing)[-1].event_hash)
    verdict = verify_chain()
    assert not verdict.chains[chain_of(billing)].ok
    assert "without the key" in verdict.chains[chain_of(billing)].reason


def test_retention_leaves_a_checkpoint_per_chain_and_each_still_verifies(two_teams):
    billing, people = two_teams
    _write(billing, 2, 10)
    head_before = json.dumps(signed_head(verify_chain()))
    cutoff_event = _chain(billing)[3]  # billing's fourth: its first three and people's three are older
    from datetime import timedelta

    from apps.audit.retention import purge_events

    report = purge_events(timedelta(days=1), now=cutoff_event.occurred_at + timedelta(days=1))
    # People keep their newest event, billing from its fourth; the platform chain's only event stays.
    assert report.through == {chain_of(billing): 3, chain_of(people): 2}
    assert report.removed == 5
    assert sorted(AuditPurge.objects.values_list("chain", "through_position")) == [
        (chain_of(billing), 3), (chain_of(people), 2)]
    verdict = verify_chain()
    assert verdict.ok
    assert verdict.chains[chain_of(billing)].purged_through == 3 and verdict.chains[chain_of(people)].purged_through == 2
    assert [event.position for event in _chain(billing)] == [4, 5]
    heads = check_heads([head_before, json.dumps(signed_head(verdict))])
    assert heads.problems == [] and heads.checked == 2
    # An edited checkpoint breaks only its own chain.
    AuditPurge.objects.filter(chain=chain_of(people)).update(through_position=1)
    verdict = verify_chain()
    assert [chain.name for chain in verdict.broken] == [chain_of(people)] and "not signed" in verdict.reason


def test_a_deleted_team_chain_is_caught_by_an_exported_head(two_teams, tmp_path):
    billing, people = two_teams
    heads = tmp_path / "heads.jsonl"
    call_command("audit_verify", "--export-head", str(heads), stdout=io.StringIO())
    from apps.audit.models import AuditChainHead

    AuditEvent.objects.filter(chain=chain_of(people)).delete()
    AuditChainHead.objects.filter(chain=chain_of(people)).delete()
    assert verify_chain().ok  # what is left is consistent in itself
    with pytest.raises(CommandError, match=f"chain {chain_of(people)}: the database holds no event at position 3"):
        call_command("audit_verify", "--check-heads", str(heads), stdout=io.StringIO())
