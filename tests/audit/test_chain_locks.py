"""Two teams, or two writers of one team, append to the audit log at once: each holds only its
own chain's head, so neither waits for the other; two appends to one chain still go one at a
time. Only PostgreSQL has these row locks (SQLite serializes every writer); CI always runs it there."""

import threading
import time

import pytest
from django.db import connection, transaction

from apps.audit import log
from apps.audit.log import chain_of, record, verify_chain
from apps.audit.models import AuditEvent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL (CI runs it there)"),
]


def _append_in_a_thread(team, slot: int | None = None) -> threading.Thread:
    def append():
        if slot is not None:
            _slots[threading.get_ident()] = slot
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


def test_one_teams_append_does_not_wait_for_another_teams_open_append(team, other_team, slots):
    record(None, "note.written", object_type="test.note", object_id=0, team=other_team)  # both chains exist
    with transaction.atomic():
        record(None, "note.written", object_type="test.note", object_id=1, team=team)  # holds billing's head
        other = _append_in_a_thread(other_team)
        other.join(timeout=10)
        assert not other.is_alive(), "the other team's append must not wait for this team's head"
        assert AuditEvent.objects.filter(chain=chain_of(other_team)).count() == 2  # committed meanwhile
    assert verify_chain().ok


@pytest.fixture
def slots(monkeypatch):
    """Writer slots chosen by the test: the main thread's is 0, a thread's what it was started with."""
    monkeypatch.setattr(log, "writer_slot", lambda: _slots.get(threading.get_ident(), 0))
    yield
    _slots.clear()


_slots: dict[int, int] = {}


def test_two_writers_of_one_team_append_at_once_to_their_own_chains(team, slots):
    record(None, "note.written", object_type="test.note", object_id=0, team=team)
    with transaction.atomic():
        record(None, "note.written", object_type="test.note", object_id=1, team=team)  # holds slot 0's head
        other = _append_in_a_thread(team, slot=5)
        other.join(timeout=10)
        assert not other.is_alive(), "a writer in another slot must not wait for this writer's head"
    assert sorted(AuditEvent.objects.values_list("chain", "position", "object_id")) == [
        (f"team:{team.pk}", 1, "0"), (f"team:{team.pk}", 2, "1"), (f"team:{team.pk}/5", 1, "2")]
    verdict = verify_chain()
    assert verdict.ok and verdict.events_checked == 3
    assert {chain.team_label for chain in verdict.chains.values()} == {team.slug}


def test_an_event_moved_to_another_slots_chain_is_detected(team, slots):
    record(None, "note.written", object_type="test.note", object_id=0, team=team)
    thread = _append_in_a_thread(team, slot=3)
    thread.join(timeout=10)
    moved = AuditEvent.objects.get(chain=f"team:{team.pk}/3")
    first = AuditEvent.objects.get(chain=f"team:{team.pk}")
    # Appended to slot 0's chain as its second event, hash untouched: the chain name is signed.
    AuditEvent.objects.filter(pk=moved.pk).update(chain=first.chain, position=2, previous_hash=first.event_hash)
    assert "without the key" in verify_chain().chains[first.chain].reason


def test_two_appends_to_one_chain_go_one_at_a_time(team, slots):
    record(None, "note.written", object_type="test.note", object_id=0, team=team)
    with transaction.atomic():
        record(None, "note.written", object_type="test.note", object_id=1, team=team)
        same = _append_in_a_thread(team, slot=0)
        assert _waiting_on_a_lock(), "a second append to the same chain must wait for its head"
    same.join(timeout=10)
    assert not same.is_alive()
    assert list(AuditEvent.objects.filter(chain=chain_of(team)).order_by("position")
                .values_list("position", "object_id")) == [(1, "0"), (2, "1"), (3, "2")]
    assert verify_chain().ok
