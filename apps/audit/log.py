"""Writing and verifying the audit chain.

`record()` appends one event inside the caller's transaction, so the event exists exactly when
the change it describes does. Each event's hash is an HMAC-SHA256, under the signing key of
FLOWDECK_AUDIT_KEYS, of its fields and the previous event's hash, and the event records the key's
id: changing or deleting a past event breaks every hash after it, and someone without the key
cannot compute them again. `verify_chain()` finds both. Events written before the chain was keyed
have no key id and keep the plain SHA-256 hash they were written with.

Appending holds the one chain-head row lock until the transaction commits, so busy writers (the
engine, once per step) open a `batched()` transaction instead: its events are kept in memory and
appended together when the block ends, with one lock, one insert and one head update, and the
lock is held only for the commit that follows.
"""

import hashlib
import hmac
import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.models import AuditChainHead, AuditEvent, AuditPurge
from apps.logging import REDACTED, SECRET_KEY_PATTERN

GENESIS_HASH = "0" * 64


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def redact(value):
    """A copy of `value` with the values of secret-looking keys replaced, at any depth."""
    if isinstance(value, dict):
        return {k: (REDACTED if SECRET_KEY_PATTERN.search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def signing_key() -> tuple[str, bytes]:
    """The id and key that sign new events and chain heads: the first of FLOWDECK_AUDIT_KEYS."""
    return next(iter(settings.FLOWDECK_AUDIT_KEYS.items()))


def hmac_sha256(key: bytes, text: str) -> str:
    return hmac.digest(key, text.encode(), "sha256").hex()


def _event_hash(event: AuditEvent, key: bytes | None) -> str:
    """The event's HMAC under `key`, or for an event from before keying (`key` None) its plain hash."""
    fields = [
        event.sequence, event.occurred_at.isoformat(), event.actor_label, event.action, event.object_type,
        str(event.object_id), event.team_label, event.data_hash, event.previous_hash,
    ]
    if key is None:
        return _sha256(canonical(fields))
    return hmac_sha256(key, canonical([*fields, event.key_id]))


def record(actor, action: str, obj=None, *, object_type: str | None = None, object_id=None,
           team=None, before=None, after=None) -> AuditEvent:
    """Append an audit event. `actor` is a user, or None for the system (engine, scheduler).

    Inside `batched()` the event is returned unsaved (no sequence yet) and written when the
    block ends."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = obj.pk if object_id is None else object_id
        if team is None:
            team = getattr(obj, "team", None)
    before, after = redact(before), redact(after)
    # Round-trip through JSON so what is hashed is exactly what the JSON column stores.
    before = json.loads(canonical(before)) if before is not None else None
    after = json.loads(canonical(after)) if after is not None else None
    event = AuditEvent(
        actor=actor,
        actor_label=actor.get_username() if actor is not None else "system",
        action=action,
        object_type=object_type or "",
        object_id=str(object_id if object_id is not None else ""),
        team=team,
        team_label=team.slug if team is not None else "",
        before=before,
        after=after,
        data_hash=_sha256(canonical({"before": before, "after": after})),
    )
    batch = _open_batch()
    if batch is not None:
        batch.events.append(event)
    else:
        _append([event])
    return event


@dataclass
class _Batch:
    # The transaction's savepoints when the batch opened: an event recorded inside a deeper
    # savepoint is written at once, so rolling that savepoint back takes the event with it.
    savepoints: tuple
    events: list[AuditEvent] = field(default_factory=list)


_local = threading.local()


def _batches() -> list[_Batch]:
    if not hasattr(_local, "batches"):
        _local.batches = []
    return _local.batches


def _open_batch() -> _Batch | None:
    """The batch that buffers events recorded right now, if any."""
    batches = _batches()
    if batches and tuple(transaction.get_connection().savepoint_ids) == batches[-1].savepoints:
        return batches[-1]
    return None


@contextmanager
def batched():
    """`transaction.atomic()` whose audit events are appended together at the end of the block
    (usable as a decorator). Events of a block that raises are dropped with its changes."""
    with transaction.atomic():
        batch = _Batch(tuple(transaction.get_connection().savepoint_ids))
        _batches().append(batch)
        try:
            yield
            _append(batch.events)
        finally:
            _batches().pop()


def flush() -> None:
    """Append the events the current batch holds so far, so events written after (by signal
    receivers in their own savepoints) follow them in the chain."""
    batch = _open_batch()
    if batch is not None and batch.events:
        _append(batch.events)
        batch.events = []


def _append(events: list[AuditEvent]) -> None:
    if not events:
        return
    # No savepoint of its own: the caller's transaction (or this one) rolls back as a whole.
    key_id, key = signing_key()
    with transaction.atomic(savepoint=False):
        sequence, previous_hash = _lock_chain_head()
        for event in events:
            sequence += 1
            # Stamped under the lock, so times never run backwards along the chain.
            event.sequence, event.occurred_at, event.previous_hash = sequence, timezone.now(), previous_hash
            event.key_id = key_id
            event.event_hash = previous_hash = _event_hash(event, key)
        _insert_and_move_head(events, sequence, previous_hash)


# Plain SQL: the engine appends once per step, and the ORM's query building cost more than the
# statements themselves.
_EVENT_COLUMNS = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]
_HEAD = AuditChainHead._meta.db_table
# Keeps a wide fan-out's events under SQLite's limit of bound parameters per statement.
_EVENTS_PER_INSERT = 500


def _lock_chain_head() -> tuple[int, str]:
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT last_sequence, last_hash FROM {_HEAD} WHERE id = 1{lock}")
        found = cursor.fetchone()
    if found is None:  # the first event ever
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
        found = head.last_sequence, head.last_hash
    return found


def _insert_and_move_head(events: list[AuditEvent], sequence: int, last_hash: str) -> None:
    columns = ", ".join(field.column for field in _EVENT_COLUMNS)
    row = "(" + ", ".join(["%s"] * len(_EVENT_COLUMNS)) + ")"
    move = f"UPDATE {_HEAD} SET last_sequence = %s, last_hash = %s WHERE id = 1"
    with connection.cursor() as cursor:
        for start in range(0, len(events), _EVENTS_PER_INSERT):
            chunk = events[start:start + _EVENTS_PER_INSERT]
            insert = (f"INSERT INTO {AuditEvent._meta.db_table} ({columns}) VALUES {', '.join([row] * len(chunk))} "
                      f"RETURNING id")
            values = [field.get_db_prep_save(getattr(event, field.attname), connection)
                      for event in chunk for field in _EVENT_COLUMNS]
            last = start + _EVENTS_PER_INSERT >= len(events)
            if last and connection.vendor == "postgresql":  # one round trip: a data-modifying CTE
                cursor.execute(f"WITH inserted AS ({insert}), moved AS ({move}) SELECT id FROM inserted",
                               values + [sequence, last_hash])
            else:
                cursor.execute(insert, values)
            # Rows come back in the order they were inserted (Django's bulk_create relies on it too).
            for event, (pk,) in zip(chunk, cursor.fetchall()):
                event.pk = pk
                event._state.adding = False
            if last and connection.vendor != "postgresql":
                cursor.execute(move, [sequence, last_hash])


@dataclass
class ChainVerdict:
    ok: bool
    keyed: int = 0  # events verified with their HMAC
    unkeyed: int = 0  # events from before keying, verified as the plain SHA-256 chain they are
    first_broken_sequence: int | None = None
    reason: str = ""
    head_hash: str = GENESIS_HASH  # of the last event verified
    head_sequence: int = 0  # of the last event verified
    purged_through: int = 0  # retention removed the events up to this one (a signed checkpoint says so)

    @property
    def events_checked(self) -> int:
        return self.keyed + self.unkeyed


def purge_fields(purge: AuditPurge) -> list:
    return [purge.through_sequence, purge.through_hash, purge.events_removed, purge.purged_at.isoformat(),
            purge.key_id]


def verify_chain() -> ChainVerdict:
    """Recompute every hash in order; report the first event that does not match."""
    keys = settings.FLOWDECK_AUDIT_KEYS
    verdict = ChainVerdict(True)

    def broken(sequence: int, reason: str) -> ChainVerdict:
        verdict.ok, verdict.first_broken_sequence, verdict.reason = False, sequence, reason
        return verdict

    events = AuditEvent.objects.order_by("sequence")
    purge = AuditPurge.objects.first()
    if purge is not None:
        key = keys.get(purge.key_id)
        if key is None or not hmac.compare_digest(hmac_sha256(key, canonical(purge_fields(purge))), purge.signature):
            return broken(purge.through_sequence + 1, (
                f"the retention checkpoint before it (events up to #{purge.through_sequence} purged) is not signed "
                f"by a key in FLOWDECK_AUDIT_KEYS (key id {purge.key_id!r}): it was forged or edited"))
        verdict.purged_through = verdict.head_sequence = purge.through_sequence
        verdict.head_hash = purge.through_hash
        # Events a purge that stopped half way did not yet remove are behind the checkpoint.
        events = events.filter(sequence__gt=purge.through_sequence)
    for event in events.iterator(chunk_size=2000):
        expected_sequence = verdict.head_sequence + 1
        if event.sequence != expected_sequence:
            return broken(expected_sequence, f"event #{expected_sequence} is missing")
        if event.previous_hash != verdict.head_hash:
            return broken(event.sequence, "its previous-hash does not match the event before it")
        if _sha256(canonical({"before": event.before, "after": event.after})) != event.data_hash:
            return broken(event.sequence, "its before/after data was changed")
        if event.key_id:
            if event.key_id not in keys:
                return broken(event.sequence, (
                    f"it is signed with key id {event.key_id!r}, which FLOWDECK_AUDIT_KEYS does not hold: "
                    f"add that key after the signing key (it holds {', '.join(map(repr, keys))}) and verify again"))
            if not hmac.compare_digest(_event_hash(event, keys[event.key_id]), event.event_hash):
                return broken(event.sequence, "its fields were changed, or its hash recomputed without the key")
            verdict.keyed += 1
        else:
            # Unkeyed events can only come before the first keyed one: later, one was rewritten.
            if verdict.keyed:
                return broken(event.sequence, "it has no key id although events before it are keyed: "
                                              "it was rewritten by someone without the key")
            if _event_hash(event, None) != event.event_hash:
                return broken(event.sequence, "its fields were changed")
            verdict.unkeyed += 1
        verdict.head_hash, verdict.head_sequence = event.event_hash, event.sequence
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and head.last_sequence != verdict.head_sequence:
        return broken(verdict.head_sequence + 1, f"the chain should end at event #{head.last_sequence}")
    return verdict
