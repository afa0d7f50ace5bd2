"""The audit log: append-only, hash-chained, tamper-evident, browsable by platform admins."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from apps.accounts.services import create_team, grant_role
from apps.audit.log import record, verify_chain
from apps.audit.models import AuditEvent


@pytest.fixture
def three_events(platform_admin, author):
    team = create_team(platform_admin, slug="finance", name="Finance")
    grant_role(platform_admin, user=author, team=team, role="author")
    record(author, "note.written", object_type="test.note", object_id=1, team=team, before={"a": 1}, after={"a": 2})
    return list(AuditEvent.objects.order_by("sequence"))


def test_each_event_chains_to_the_one_before(three_events):
    assert [e.position for e in three_events] == [1, 2, 3]
    assert three_events[1].previous_hash == three_events[0].event_hash
    assert three_events[2].previous_hash == three_events[1].event_hash
    assert verify_chain().ok


def test_changed_data_is_detected_and_named(three_events):
    AuditEvent.objects.filter(position=2).update(after={"user": "mallory", "role": "author"})
    verdict = verify_chain()
    assert not verdict.ok
    assert verdict.first_broken_position == 2
    with pytest.raises(CommandError, match="position 2"):
        call_command("audit_verify")


def test_changed_actor_is_detected(three_events):
    AuditEvent.objects.filter(position=3).update(actor_label="someone-else")
    assert verify_chain().first_broken_position == 3


def test_deleted_event_is_detected(three_events):
    AuditEvent.objects.filter(position=2).delete()
    verdict = verify_chain()
    assert not verdict.ok and verdict.first_broken_position == 3  # where the gap shows
    assert "team finance" in verdict.reason and "position 2 before it is missing" in verdict.reason


def test_intact_chain_verifies(three_events, capsys):
    call_command("audit_verify")
    assert "3 events verified" in capsys.readouterr().out


def test_secrets_are_redacted_before_they_are_stored(author):
    event = record(author, "connection.changed", object_type="catalog.connection", object_id=1,
                   after={"name": "warehouse", "password": "hunter2", "nested": {"api_key": "abc"}})
    stored = AuditEvent.objects.get(pk=event.pk)
    assert "hunter2" not in str(stored.after) and "abc" not in str(stored.after)
    assert stored.after["name"] == "warehouse"
    assert verify_chain().ok


def test_only_platform_admins_browse_the_log(three_events, author, platform_admin, client_for):
    assert client_for(author).get(reverse("audit:list")).status_code == 403
    page = client_for(platform_admin).get(reverse("audit:list"), {"action": "membership."})
    assert page.status_code == 200
    body = page.content.decode()
    assert "membership.granted" in body and "team.created" not in body


def test_audit_filter_answers_htmx_with_just_the_table(three_events, platform_admin, client_for):
    page = client_for(platform_admin).get(reverse("audit:list"), {"actor": "ada-author"}, HTTP_HX_REQUEST="true")
    body = page.content.decode()
    assert body.lstrip().startswith('<div id="events">')
    assert "note.written" in body and "<html" not in body
