"""Writing and verifying the audit chain.

`record()` appends one event inside the caller's transaction, so the event exists exactly when
the change it describes does. Each event's hash is an HMAC-SHA256, under the signing key of
FLOWDECK_AUDIT_KEYS, of its fields and the previous event's hash, and the event records the key's
id: changing or deleting a past event breaks every hash after it, and someone without the key
cannot compute them again. `verify_chain()` finds both. Events written before the chain was keyed
have no key id and keep the plain SHA-256 hash they were written with.

Each team's events form their own chains (one per writer slot on PostgreSQL), and events with no
team the platform chain (`chain_of`): an event's position along its chain is what it hashes, and a
global `sequence`, drawn without a lock, orders events across chains for people. Appending holds
the chain's head row lock until the transaction commits, so two teams, or two writers of one team,
never wait on each other, and busy writers
(the engine, once per step) open a `batched()` transaction: its events are kept in memory and
appended together when the block ends, with one lock per chain, one insert and one head update,
and the lock is held only for the commit that follows. On PostgreSQL a process that knows a
chain's head (it wrote or read it last) appends in one statement that moves the head only if it
is still the one known, and falls back to locking and reading it when another writer came between.
"""

import hashlib
import hmac
import itertools
import json
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.models import PLATFORM_CHAIN, AuditChainHead, AuditEvent, AuditPurge
from apps.logging import REDACTED, SECRET_KEY_PATTERN
from apps.sql import typed_placeholders

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
    """The event's HMAC under `key`, or for an event from before keying (`key` None) its plain hash.

    A team chain's events sign their chain's name too, so no event can be moved to another chain;
    the platform chain's leave it out, which keeps the events from before the split verifiable."""
    fields = [
        event.position, event.occurred_at.isoformat(), event.actor_label, event.action, event.object_type,
        str(event.object_id), event.team_label, event.data_hash, event.previous_hash,
    ]
    if key is None:
        return _sha256(canonical(fields))
    signed = [*fields, event.key_id] if event.chain == PLATFORM_CHAIN else [*fields, event.key_id, event.chain]
    return hmac_sha256(key, canonical(signed))


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
        chain=chain_of(team),
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


def chain_of(team) -> str:
    """The chain this writer extends with a team's events, or the platform chain for events with no team.

    On PostgreSQL a team's events spread over FLOWDECK_AUDIT_CHAIN_SLOTS chains, one per writer
    slot ("team:<id>" for slot 0, "team:<id>/<slot>" for the others), so writers (a worker
    process, a web thread) each hold their own chain's head through their commits instead of all
    queueing on the team's one head; two writers that share a slot still take turns on its head.
    SQLite lets one writer in at a time anyway, so there a team keeps one chain."""
    if team is None:
        return PLATFORM_CHAIN
    slot = writer_slot()
    return f"team:{team.pk}" if slot == 0 else f"team:{team.pk}/{slot}"


def writer_slot() -> int:
    """This process's (and thread's) slot among FLOWDECK_AUDIT_CHAIN_SLOTS: fixed for its life, so
    it keeps appending to the chain whose head it knows. Taken from the process id (processes
    started together have neighbouring ids, so they get different slots) plus the thread's order of
    first use in the process."""
    slots = settings.FLOWDECK_AUDIT_CHAIN_SLOTS if connection.vendor == "postgresql" else 1
    if slots <= 1:
        return 0
    if not hasattr(_local, "thread_order"):
        _local.thread_order = next(_thread_orders)
    return (os.getpid() + _local.thread_order * _THREAD_STRIDE) % slots


_thread_orders = itertools.count()
# Threads of one process step through the slots by a stride, away from their neighbours' processes.
_THREAD_STRIDE = 5


def _append(events: list[AuditEvent]) -> None:
    if not events:
        return
    # No savepoint of its own: the caller's transaction (or this one) rolls back as a whole.
    key_id, key = signing_key()
    by_chain: dict[str, list[AuditEvent]] = {}
    for event in events:
        by_chain.setdefault(event.chain, []).append(event)
    with transaction.atomic(savepoint=False):
        if len(by_chain) == 1 and _append_to_known_head(events, key_id, key):
            return
        moves = []
        # Heads are locked in one order, so two writers that touch the same chains cannot deadlock.
        for chain in sorted(by_chain):
            moves.append((chain, *_chain_onto(by_chain[chain], *_lock_chain_head(chain), key_id, key)))
        _insert_and_move_heads(events, moves)
        _known_heads.update({chain: (position, head) for chain, position, head in moves})


def _chain_onto(events: list[AuditEvent], position: int, previous_hash: str, key_id: str, key: bytes) -> tuple[int, str]:
    """Give `events` their positions and hashes after the head (`position`, `previous_hash`); the new head."""
    for event in events:
        position += 1
        # Stamped after the head's own event was written, so times never run backwards along a chain.
        event.position, event.occurred_at, event.previous_hash = position, timezone.now(), previous_hash
        event.key_id = key_id
        event.event_hash = previous_hash = _event_hash(event, key)
    return position, previous_hash


# The head this process last wrote or read for each chain: a guess, checked by the database.
_known_heads: dict[str, tuple[int, str]] = {}
# For a chain other processes write to as well (the guess missed): how many appends lock and read
# its head before guessing again, and the wait after the next miss (doubling up to 64), so a
# busy shared chain costs two statements an append, not three.
_guesses_withheld: dict[str, tuple[int, int]] = {}


def _append_to_known_head(events: list[AuditEvent], key_id: str, key: bytes) -> bool:
    """Append one chain's events in one statement (PostgreSQL): hashed onto the head this process
    knows, and inserted only if the head row still holds it, which the same statement moves on
    (so it is locked as the read would lock it). False, with nothing written, when another
    writer moved the head since: the caller then locks and reads it."""
    chain = events[0].chain
    known = _known_heads.get(chain)
    if connection.vendor != "postgresql" or known is None or len(events) > _EVENTS_PER_INSERT:
        return False
    withheld, backoff = _guesses_withheld.get(chain, (0, 1))
    if withheld:
        _guesses_withheld[chain] = (withheld - 1, backoff)
        return False
    position, head = _chain_onto(events, *known, key_id, key)
    if not _insert_and_move_heads(events, [(chain, position, head)], expected=known):
        _known_heads.pop(chain, None)
        _guesses_withheld[chain] = (backoff, min(backoff * 2, 64))
        return False
    _known_heads[chain] = (position, head)
    _guesses_withheld.pop(chain, None)
    return True


# Plain SQL: the engine appends once per step, and the ORM's query building cost more than the
# statements themselves.
_EVENT_COLUMNS = tuple(field for field in AuditEvent._meta.concrete_fields
                       if not field.primary_key and field.attname != "sequence")
_HEAD = AuditChainHead._meta.db_table
# The global order on PostgreSQL: a sequence (migration 0004), which no writer waits on.
_SEQUENCE = "audit_event_sequence"
# Keeps a wide fan-out's events under SQLite's limit of bound parameters per statement.
_EVENTS_PER_INSERT = 500


def _lock_chain_head(chain: str) -> tuple[int, str]:
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    select = f"SELECT last_position, last_hash FROM {_HEAD} WHERE chain = %s{lock}"
    with connection.cursor() as cursor:
        cursor.execute(select, [chain])
        found = cursor.fetchone()
        if found is None:  # the chain's first event: its head row, then its lock
            cursor.execute(f"INSERT INTO {_HEAD} (chain, last_position, last_hash) VALUES (%s, 0, %s) "
                           f"ON CONFLICT (chain) DO NOTHING", [chain, GENESIS_HASH])
            cursor.execute(select, [chain])
            found = cursor.fetchone()
    return found


def _insert_and_move_heads(events: list[AuditEvent], moves: list[tuple[str, int, str]], *,
                           expected: tuple[int, str] | None = None) -> bool:
    """Insert the events and move each chain's head. With `expected` (one chain, PostgreSQL), only
    if that head still holds it: False when it did not, and nothing was written."""
    postgres = connection.vendor == "postgresql"
    columns = ", ".join(["sequence"] + [field.column for field in _EVENT_COLUMNS])
    # SQLite holds its one write lock for the whole transaction, so the next number is safe to read.
    next_sequence = f"nextval('{_SEQUENCE}')" if postgres else "%s"
    move = f"UPDATE {_HEAD} SET last_position = %s, last_hash = %s WHERE chain = %s"
    with connection.cursor() as cursor:
        if not postgres:
            cursor.execute(f"SELECT COALESCE(MAX(sequence), 0) FROM {AuditEvent._meta.db_table}")
            sequence = cursor.fetchone()[0]
        for start in range(0, len(events), _EVENTS_PER_INSERT):
            chunk = events[start:start + _EVENTS_PER_INSERT]
            last = start + _EVENTS_PER_INSERT >= len(events)
            values = []
            for event in chunk:
                if not postgres:
                    sequence += 1
                    values.append(sequence)
                values += [field.get_db_prep_save(getattr(event, field.attname), connection) for field in _EVENT_COLUMNS]
            if expected is not None:
                rows = " UNION ALL ".join([f"SELECT {next_sequence}, {typed_placeholders(_EVENT_COLUMNS)} WHERE EXISTS (SELECT 1 FROM moved)"]
                                          * len(chunk))
                (chain, position, head), = moves
                cursor.execute(f"WITH moved AS ({move} AND last_position = %s AND last_hash = %s RETURNING 1) "
                               f"INSERT INTO {AuditEvent._meta.db_table} ({columns}) {rows} RETURNING id, sequence",
                               [position, head, chain, *expected, *values])
            else:
                row = f"({next_sequence}, " + ", ".join(["%s"] * len(_EVENT_COLUMNS)) + ")"
                insert = (f"INSERT INTO {AuditEvent._meta.db_table} ({columns}) VALUES {', '.join([row] * len(chunk))} "
                          f"RETURNING id, sequence")
                if last and postgres:  # one round trip: a data-modifying CTE
                    moved = ", ".join(f"moved{number} AS ({move})" for number in range(len(moves)))
                    cursor.execute(f"WITH inserted AS ({insert}), {moved} SELECT id, sequence FROM inserted",
                                   values + [value for chain, position, head in moves
                                             for value in (position, head, chain)])
                else:
                    cursor.execute(insert, values)
            # Rows come back in the order they were inserted (Django's bulk_create relies on it too).
            inserted = cursor.fetchall()
            if not inserted:
                return False
            for event, (pk, number) in zip(chunk, inserted):
                event.pk, event.sequence = pk, number
                event._state.adding = False
            if last and not postgres:
                for chain, position, head in moves:
                    cursor.execute(move, [position, head, chain])
    return True


@dataclass
class Chain:
    """What verification found along one chain."""

    name: str
    team_label: str = ""  # the team's slug on its latest event, for people
    keyed: int = 0  # events verified with their HMAC
    unkeyed: int = 0  # events from before keying, verified as the plain SHA-256 chain they are
    head_hash: str = GENESIS_HASH  # of the last event verified
    head_position: int = 0  # of the last event verified
    purged_through: int = 0  # retention removed the events up to this position (a signed checkpoint says so)
    broken_at: int | None = None  # the global sequence of the first event that fails, if it was found
    broken_position: int | None = None  # the position where the chain first fails
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason

    @property
    def title(self) -> str:
        if self.name == PLATFORM_CHAIN:
            return "the platform chain"
        return f"chain {self.name}" + (f" (team {self.team_label})" if self.team_label else "")


@dataclass
class ChainVerdict:
    chains: dict[str, Chain] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(chain.ok for chain in self.chains.values())

    @property
    def broken(self) -> list[Chain]:
        return [chain for chain in self.chains.values() if not chain.ok]

    @property
    def first_broken_sequence(self) -> int | None:
        return self.broken[0].broken_at if self.broken else None

    @property
    def first_broken_position(self) -> int | None:
        return self.broken[0].broken_position if self.broken else None

    @property
    def reason(self) -> str:
        return "; ".join(f"{chain.title}: {chain.reason}" for chain in self.broken)

    @property
    def keyed(self) -> int:
        return sum(chain.keyed for chain in self.chains.values())

    @property
    def unkeyed(self) -> int:
        return sum(chain.unkeyed for chain in self.chains.values())

    @property
    def events_checked(self) -> int:
        return self.keyed + self.unkeyed


def purge_fields(purge: AuditPurge) -> list:
    fields = [purge.through_position, purge.through_hash, purge.events_removed, purge.purged_at.isoformat(),
              purge.key_id]
    # As for events: the platform chain's checkpoints sign what they signed before the split.
    return fields if purge.chain == PLATFORM_CHAIN else [*fields, purge.chain]


def latest_purges() -> dict[str, AuditPurge]:
    """Each chain's latest retention checkpoint."""
    return {purge.chain: purge for purge in AuditPurge.objects.order_by("through_position")}


def verify_chain() -> ChainVerdict:
    """Recompute every chain's hashes in order; report, per chain, the first event that does not match."""
    keys = settings.FLOWDECK_AUDIT_KEYS
    verdict = ChainVerdict()
    for name, purge in latest_purges().items():
        verdict.chains[name] = chain = Chain(name)
        key = keys.get(purge.key_id)
        if key is None or not hmac.compare_digest(hmac_sha256(key, canonical(purge_fields(purge))), purge.signature):
            chain.broken_position = purge.through_position + 1
            chain.reason = (f"the retention checkpoint (events up to position {purge.through_position} purged) is not "
                            f"signed by a key in FLOWDECK_AUDIT_KEYS (key id {purge.key_id!r}): it was forged or edited")
        chain.purged_through = chain.head_position = purge.through_position
        chain.head_hash = purge.through_hash
    for event in AuditEvent.objects.order_by("chain", "position").iterator(chunk_size=2000):
        chain = verdict.chains.get(event.chain)
        if chain is None:
            verdict.chains[event.chain] = chain = Chain(event.chain)
        chain.team_label = event.team_label
        # Events a purge that stopped half way did not yet remove are behind the checkpoint.
        if chain.ok and event.position > chain.purged_through:
            _verify_event(chain, event, keys)
    heads = {head.chain: head.last_position for head in AuditChainHead.objects.all()}
    for name, last_position in heads.items():
        chain = verdict.chains.setdefault(name, Chain(name))
        if chain.ok and last_position != chain.head_position:
            chain.broken_position = chain.head_position + 1
            chain.reason = (f"the chain should end at position {last_position}, but its last event is at "
                            f"position {chain.head_position}")
    for chain in verdict.chains.values():
        if chain.ok and chain.head_position and chain.name not in heads:
            chain.broken_position = chain.head_position
            chain.reason = "its head row is missing"
    return verdict


def _verify_event(chain: Chain, event: AuditEvent, keys: dict[str, bytes]) -> None:
    def broken(reason: str) -> None:
        chain.broken_at, chain.broken_position = event.sequence, event.position
        chain.reason = f"event #{event.sequence} (position {event.position}): {reason}"

    expected = chain.head_position + 1
    if event.position != expected:
        return broken(f"the event at position {expected} before it is missing")
    if event.previous_hash != chain.head_hash:
        return broken("its previous-hash does not match the event before it")
    if _sha256(canonical({"before": event.before, "after": event.after})) != event.data_hash:
        return broken("its before/after data was changed")
    if event.key_id:
        if event.key_id not in keys:
            return broken(
                f"it is signed with key id {event.key_id!r}, which FLOWDECK_AUDIT_KEYS does not hold: "
                f"add that key after the signing key (it holds {', '.join(map(repr, keys))}) and verify again")
        if not hmac.compare_digest(_event_hash(event, keys[event.key_id]), event.event_hash):
            return broken("its fields were changed, or its hash recomputed without the key")
        chain.keyed += 1
    else:
        # Unkeyed events can only come before the first keyed one, and only in the platform chain
        # (team chains were keyed from their start): anywhere else, one was rewritten.
        if chain.keyed or chain.name != PLATFORM_CHAIN:
            return broken("it has no key id although its chain is keyed: it was rewritten by someone without the key")
        if _event_hash(event, None) != event.event_hash:
            return broken("its fields were changed")
        chain.unkeyed += 1
    chain.head_hash, chain.head_position = event.event_hash, event.position
