"""Two teams append to the audit log at once: each holds only its own chain's head, so neither
waits for the other; two appends to one team's chain still go one at a time. Only PostgreSQL
has these row locks (SQLite serializes every writer); CI always runs it there."""

import threading
import time

import pytest
from django.db import connection, transaction

from apps.audit.log import chain_of, record, verify_chain
from apps.audit.models import AuditEvent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL (CI runs it there)"),
]


def _append_in_a_thread(team) -> threading.Thread:
    def append():
        try:
            record(None, "note.written", object_type="test.note", object_id=2, team=team)
        finally:
            connection.close()

    thread = threading.Thread(target=append)
    thread.start()
    return thread


def _waiting_on_a_lock() -> bool:
    """Whether another session of this database waits for a row lock, looked for up to 10 s."""
    deadline = time.monotonic() + 10
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # else a transaction sees one snapshot
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'")
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.05)
    return False


def test_one_teams_append_does_not_wait_for_another_teams_open_append(team, other_team):
    record(None, "note.written", object_type="test.note", object_id=0, team=other_team)  # both chains exist
    with transaction.atomic():
        record(None, "note.written", object_type="test.note", object_id=1, team=team)  # holds billing's head
        other = _append_in_a_thread(other_team)
        other.join(timeout=10)
        assert not other.is_alive(), "the other team's append must not wait for this team's head"
        assert AuditEvent.objects.filter(chain=chain_of(other_team)).count() == 2  # committed meanwhile
    assert verify_chain().ok


def test_two_appends_to_one_teams_chain_go_one_at_a_time(team):
    record(None, "note.written", object_type="test.note", object_id=0, team=team)
    with transaction.atomic():
        record(None, "note.written", object_type="test.note", object_id=1, team=team)
        same = _append_in_a_thread(team)
        assert _waiting_on_a_lock(), "a second append to the same chain must wait for its head"
    same.join(timeout=10)
    assert not same.is_alive()
    assert list(AuditEvent.objects.filter(chain=chain_of(team)).order_by("position")
                .values_list("position", "object_id")) == [(1, "0"), (2, "1"), (3, "2")]
    assert verify_chain().ok
