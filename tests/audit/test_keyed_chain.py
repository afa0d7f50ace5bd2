"""The keyed audit chain: an HMAC per event, rotation, and signed heads kept outside the database.

The attacker in these tests can write the database but does not hold FLOWDECK_AUDIT_KEYS: every
rewrite they can make, however careful, must be detected.
"""

import hashlib
import io
import json
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from apps.audit.keys import parse_audit_keys
from apps.audit.log import record, verify_chain
from apps.audit.models import AuditChainHead, AuditEvent

OLD_KEY = b"old-key-" + b"o" * 32
NEW_KEY = b"new-key-" + b"n" * 32


@pytest.fixture(autouse=True)
def old_key(settings):
    settings.FLOWDECK_AUDIT_KEYS = {"2025": OLD_KEY}


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)


def _sha256(value) -> str:
    return hashlib.sha256(_canonical(value).encode()).hexdigest()


def _plain_hash(event: AuditEvent) -> str:
    """The event's hash as the unkeyed chain computes it: all a rewriter without the key can do."""
    return _sha256([
        event.position, event.occurred_at.isoformat(), event.actor_label, event.action, event.object_type,
        event.object_id, event.team_label, event.data_hash, event.previous_hash,
    ])


def _rewrite_from(sequence: int, *, key_id: str | None = None) -> None:
    """Recompute every hash from `sequence` on with plain SHA-256 (key ids kept unless `key_id` is
    given) and move the chain head, as a careful attacker with database access would."""
    events = list(AuditEvent.objects.order_by("sequence"))
    previous_hash = events[sequence - 2].event_hash if sequence > 1 else "0" * 64
    for event in events[sequence - 1:]:
        event.data_hash = _sha256({"before": event.before, "after": event.after})
        event.previous_hash = previous_hash
        if key_id is not None:
            event.key_id = key_id
        event.event_hash = previous_hash = _plain_hash(event)
        AuditEvent.objects.filter(pk=event.pk).update(
            data_hash=event.data_hash, previous_hash=event.previous_hash, event_hash=event.event_hash,
            key_id=event.key_id)
    AuditChainHead.objects.filter(chain="platform").update(last_position=len(events), last_hash=previous_hash)


def _write(count: int, start: int = 1) -> None:
    for number in range(start, start + count):
        record(None, "note.written", object_type="test.note", object_id=number, after={"n": number})


def _unkeyed_events(count: int) -> None:
    """Events as the chain wrote them before it was keyed: no key id, plain SHA-256."""
    previous_hash = "0" * 64
    for sequence in range(1, count + 1):
        event = AuditEvent(sequence=sequence, position=sequence, occurred_at=timezone.now(), actor_label="system",
                           action="legacy.note", object_type="test.note", object_id=str(sequence), after={"n": sequence},
                           previous_hash=previous_hash, key_id="",
                           data_hash=_sha256({"before": None, "after": {"n": sequence}}))
        event.event_hash = previous_hash = _plain_hash(event)
        event.save()
    AuditChainHead.objects.update_or_create(chain="platform", defaults={"last_position": count,
                                                                        "last_hash": previous_hash})
    if connection.vendor == "postgresql":  # as migration 0004 does: new events are numbered after these
        with connection.cursor() as cursor:
            cursor.execute("SELECT setval('audit_event_sequence', %s)", [count])


def _verify(*args) -> str:
    out = io.StringIO()
    call_command("audit_verify", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_new_events_carry_the_signing_key_id_and_verify(db):
    _write(3)
    assert set(AuditEvent.objects.values_list("key_id", flat=True)) == {"2025"}
    verdict = verify_chain()
    assert verdict.ok and (verdict.keyed, verdict.unkeyed) == (3, 0)


def test_batched_engine_events_are_signed_too(db):
    from apps.audit.log import batched

    with batched():
        _write(3)
    assert list(AuditEvent.objects.values_list("key_id", flat=True)) == ["2025"] * 3
    assert verify_chain().ok


def test_one_tampered_row_is_detected(db):
    _write(3)
    AuditEvent.objects.filter(position=2).update(action="note.deleted")
    verdict = verify_chain()
    assert not verdict.ok and verdict.first_broken_position == 2
    with pytest.raises(CommandError, match="position 2"):
        _verify()


def test_a_chain_recomputed_with_plain_sha256_without_the_key_is_detected(db):
    _write(4)
    AuditEvent.objects.filter(position=2).update(after={"n": "forged"})
    _rewrite_from(2)
    verdict = verify_chain()
    assert not verdict.ok and verdict.first_broken_position == 2
    assert "without the key" in verdict.reason


def test_a_rewritten_tail_passed_off_as_unkeyed_is_detected(db):
    _write(4)
    AuditEvent.objects.filter(position=3).update(actor_label="someone-else")
    _rewrite_from(3, key_id="")
    verdict = verify_chain()
    assert not verdict.ok and verdict.first_broken_position == 3
    assert "no key id" in verdict.reason


def test_a_whole_chain_rewritten_as_unkeyed_is_caught_by_an_exported_head(db, tmp_path):
    heads = tmp_path / "heads.jsonl"
    _write(4)
    _verify("--export-head", str(heads))
    AuditEvent.objects.filter(position=1).update(after={"n": "forged"})
    _rewrite_from(1, key_id="")
    # The chain alone is consistent, but says none of it is signed...
    assert "0 signed with HMAC-SHA256, 4 written before keying" in _verify()
    # ...and the head signed before the rewrite no longer matches.
    with pytest.raises(CommandError, match="platform chain: the event at position 4 is not the one the head on line 1"):
        _verify("--check-heads", str(heads))


def test_a_truncated_tail_is_caught_by_an_exported_head(db, tmp_path):
    heads = tmp_path / "heads.jsonl"
    _write(5)
    _verify("--export-head", str(heads))
    AuditEvent.objects.filter(position__gte=4).delete()
    AuditChainHead.objects.filter(chain="platform").update(
        last_position=3, last_hash=AuditEvent.objects.get(position=3).event_hash)
    assert verify_chain().ok  # the shortened chain is consistent in itself
    with pytest.raises(CommandError, match="holds no event at position 5.*deleted from the end of the chain"):
        _verify("--check-heads", str(heads))


def test_heads_accumulate_and_the_chain_is_checked_against_all_of_them(db, tmp_path):
    heads = tmp_path / "heads.jsonl"
    _write(2)
    _verify("--export-head", str(heads))
    _write(2, start=3)
    assert "Signed head appended" in _verify("--export-head", str(heads))
    lines = [json.loads(line) for line in heads.read_text().splitlines()]
    assert [(head["chains"]["platform"]["position"], head["events"], head["key_id"]) for head in lines] == [
        (2, 2, "2025"), (4, 4, "2025")]
    assert lines[1]["chains"]["platform"]["event_hash"] == AuditEvent.objects.get(position=4).event_hash
    assert "matches all 2 exported heads" in _verify("--check-heads", str(heads))


def test_a_printed_head_can_be_checked_later_from_standard_input(db, monkeypatch):
    _write(2)
    out, err = io.StringIO(), io.StringIO()
    call_command("audit_verify", "--export-head", "-", stdout=out, stderr=err)
    head = json.loads(out.getvalue())  # only the head, for the external store
    assert set(head) == {"chains", "events", "exported_at", "key_id", "signature"}
    assert "2 events verified" in err.getvalue()
    monkeypatch.setattr(sys, "stdin", io.StringIO(out.getvalue()))
    assert "matches all 1 exported heads" in _verify("--check-heads", "-")


def test_a_head_whose_signature_fails_is_reported(db, tmp_path):
    heads = tmp_path / "heads.jsonl"
    _write(3)
    _verify("--export-head", str(heads))
    head = json.loads(heads.read_text())
    # A rewriter moving the head back to their forged chain cannot sign it again.
    head["chains"]["platform"]["event_hash"] = "f" * 64
    heads.write_text(json.dumps(head) + "\nnot a head\n")
    with pytest.raises(CommandError) as refused:
        _verify("--check-heads", str(heads))
    assert "signature of the head on line 1 does not match" in str(refused.value)
    assert "line 2 is not a signed chain head" in str(refused.value)


def test_after_rotation_old_events_verify_and_new_ones_use_the_new_key(db, settings, tmp_path):
    heads = tmp_path / "heads.jsonl"
    _write(2)
    _verify("--export-head", str(heads))
    settings.FLOWDECK_AUDIT_KEYS = {"2026": NEW_KEY, "2025": OLD_KEY}
    _write(2, start=3)
    assert list(AuditEvent.objects.order_by("sequence").values_list("key_id", flat=True)) == [
        "2025", "2025", "2026", "2026"]
    verdict = verify_chain()
    assert verdict.ok and verdict.keyed == 4
    _verify("--export-head", str(heads))
    assert [json.loads(line)["key_id"] for line in heads.read_text().splitlines()] == ["2025", "2026"]
    assert "matches all 2 exported heads" in _verify("--check-heads", str(heads))


def test_an_event_signed_with_an_unknown_key_id_is_reported_by_name(db, settings):
    _write(2)
    settings.FLOWDECK_AUDIT_KEYS = {"2026": NEW_KEY}
    _write(1, start=3)
    verdict = verify_chain()
    assert not verdict.ok and verdict.first_broken_position == 1
    with pytest.raises(CommandError, match="key id '2025', which FLOWDECK_AUDIT_KEYS does not hold"):
        _verify()


def test_a_head_signed_with_an_unknown_key_id_is_reported_by_name(db, settings, tmp_path):
    heads = tmp_path / "heads.jsonl"
    _unkeyed_events(2)  # unkeyed events still verify without any key, so only the head is in question
    _verify("--export-head", str(heads))
    settings.FLOWDECK_AUDIT_KEYS = {"2026": NEW_KEY}
    with pytest.raises(CommandError, match="head on line 1 is signed with key id '2025'"):
        _verify("--check-heads", str(heads))


def test_events_from_before_keying_still_verify_as_plain_sha256(db):
    _unkeyed_events(2)
    _write(3, start=3)
    verdict = verify_chain()
    assert verdict.ok and (verdict.unkeyed, verdict.keyed) == (2, 3)
    assert "5 events verified (3 signed with HMAC-SHA256, 2 written before keying" in _verify()
    AuditEvent.objects.filter(position=1).update(action="legacy.changed")
    assert verify_chain().first_broken_position == 1


def test_check_deploy_warns_until_the_key_comes_from_the_environment(db, settings, monkeypatch):
    settings.DEBUG = False
    monkeypatch.delenv("FLOWDECK_AUDIT_KEYS", raising=False)
    found = checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
    assert "audit.W001" in [message.id for message in found]
    monkeypatch.setenv("FLOWDECK_AUDIT_KEYS", "2025:" + OLD_KEY.decode())
    found = checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
    assert "audit.W001" not in [message.id for message in found]


@pytest.mark.parametrize("raw, says", [
    ("2025", "does not start with a key id"),
    ("2025:short", "fewer than 32"),
    (f"a:{'k' * 32},a:{'j' * 32}", "names key id 'a' twice"),
    (f"bad id!:{'k' * 32}", "does not start with a key id"),
])
def test_a_bad_key_list_is_refused_with_what_to_write(raw, says):
    with pytest.raises(ImproperlyConfigured, match=says):
        parse_audit_keys(raw)


def test_keys_in_order_first_one_signs():
    assert list(parse_audit_keys(f"new:{'n' * 32}, old:{'o' * 32}")) == ["new", "old"]


def test_a_bad_key_list_stops_the_process_at_start_up(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "FLOWDECK_VAR_DIR": str(tmp_path), "FLOWDECK_AUDIT_KEYS": "2025:short"}
    started = subprocess.run([sys.executable, "manage.py", "check"], check=False, cwd=django_settings.BASE_DIR, env=env,
                             capture_output=True, text=True, timeout=120)
    assert started.returncode != 0
    assert "FLOWDECK_AUDIT_KEYS key '2025' is 5 characters long" in started.stderr


def test_the_audit_page_names_the_signing_key(db, platform_admin, client_for):
    page = client_for(platform_admin).get(reverse("audit:list"))
    assert "signed with key id <code>2025</code>" in page.content.decode()
