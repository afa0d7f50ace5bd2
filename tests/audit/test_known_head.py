"""Appending onto the head a process knows: one statement on PostgreSQL, and when the guess is
stale (another process appended, or the append that moved it rolled back) the event still goes
right after the real head, so the chain verifies end to end."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.audit import log
from apps.audit.log import chain_of, record, verify_chain
from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _note(team, number: int) -> None:
    record(None, "note.written", object_type="test.note", object_id=number, team=team)


def _positions(team) -> list[tuple[int, str]]:
    return list(AuditEvent.objects.filter(chain=chain_of(team)).order_by("position")
                .values_list("position", "object_id"))


def test_an_append_after_another_process_appended_follows_the_real_head(team):
    _note(team, 1)
    guess_before = dict(log._known_heads)
    _note(team, 2)
    log._known_heads.update(guess_before)  # as in a process that did not see event 2 written
    _note(team, 3)
    assert _positions(team) == [(1, "1"), (2, "2"), (3, "3")]
    assert verify_chain().ok


def test_an_append_after_a_rolled_back_one_reuses_its_position(team):
    _note(team, 1)
    with pytest.raises(RuntimeError), transaction.atomic():
        _note(team, 2)
        raise RuntimeError("the change the event described failed")
    _note(team, 3)
    assert _positions(team) == [(1, "1"), (2, "3")]
    assert verify_chain().ok


@pytest.mark.skipif(connection.vendor != "postgresql", reason="one statement needs PostgreSQL's CTEs")
def test_appending_onto_a_known_head_is_one_statement(team):
    _note(team, 1)
    with CaptureQueriesContext(connection) as statements:
        _note(team, 2)
    assert len(statements) == 1, [query["sql"][:80] for query in statements]
    assert verify_chain().ok
