"""Signed chain heads: the audit chain's latest event, signed and kept outside the database.

A head names the last event's sequence and hash, the number of events, when it was taken and the
id of the key whose HMAC signs it. Checked later against the database, it detects what the chain
alone cannot: the tail deleted, or the whole chain rewritten (even as plain, unkeyed hashes) by
someone who can write the database but holds no key. Heads are JSON lines, so a file of them (or
an external store fed with `audit_verify --export-head -`) accumulates one per export.
"""

import hmac
import json
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from apps.audit.log import ChainVerdict, canonical, hmac_sha256, signing_key
from apps.audit.models import AuditEvent, AuditPurge

_FIELDS = ("sequence", "event_hash", "events", "exported_at", "key_id")


def signed_head(verdict: ChainVerdict) -> dict:
    """The head of a chain that `verify_chain()` just found intact, signed with the signing key."""
    key_id, key = signing_key()
    # `sequence` names the last event; `events` counts those the database holds (fewer after a purge).
    head = {"sequence": verdict.head_sequence, "event_hash": verdict.head_hash, "events": verdict.events_checked,
            "exported_at": timezone.now().isoformat(), "key_id": key_id}
    return {**head, "signature": hmac_sha256(key, canonical(head))}


@dataclass
class HeadsVerdict:
    checked: int = 0
    purged: int = 0  # heads naming events that retention removed (before its signed checkpoint)
    problems: list[str] = field(default_factory=list)


def check_heads(lines) -> HeadsVerdict:
    """Check each exported head's signature, then that the database still holds the event it names."""
    verdict = HeadsVerdict()
    heads = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            head, problem = _read_head(number, line)
            if problem:
                verdict.problems.append(problem)
            else:
                heads.append((number, head))
    stored = dict(AuditEvent.objects.filter(sequence__in=[head["sequence"] for _, head in heads])
                  .values_list("sequence", "event_hash"))
    # verify_chain() checked the purge checkpoint's signature; a head inside the purged range
    # names an event retention removed on purpose (its hash is known only at the checkpoint).
    purge = AuditPurge.objects.first()
    purged_through = purge.through_sequence if purge else 0
    if purge:
        stored.setdefault(purge.through_sequence, purge.through_hash)
    for number, head in heads:
        verdict.checked += 1
        sequence, taken = head["sequence"], f"line {number} (exported {head['exported_at']})"
        if sequence and sequence < purged_through and sequence not in stored:
            verdict.purged += 1
        elif sequence and sequence not in stored:
            verdict.problems.append(f"the database holds no event #{sequence}, which the head on {taken} names: "
                                    "events were deleted from the end of the chain")
        elif sequence and stored[sequence] != head["event_hash"]:
            verdict.problems.append(f"event #{sequence} is not the one the head on {taken} names: "
                                    "the chain up to it was rewritten")
    return verdict


def _read_head(number: int, line: str) -> tuple[dict | None, str]:
    try:
        head = json.loads(line)
        unsigned = {name: head[name] for name in _FIELDS}
        signature = head["signature"]
        valid = (isinstance(head["sequence"], int) and isinstance(unsigned["key_id"], str)
                 and isinstance(signature, str))
    except (ValueError, TypeError, KeyError):
        valid = False
    if not valid:
        return None, (f"line {number} is not a signed chain head (a JSON object with {', '.join(_FIELDS)} "
                      "and signature): remove it or export the head again")
    key = settings.FLOWDECK_AUDIT_KEYS.get(unsigned["key_id"])
    if key is None:
        return None, (f"the head on line {number} is signed with key id {unsigned['key_id']!r}, which "
                      "FLOWDECK_AUDIT_KEYS does not hold: add that key after the signing key to check it")
    if not hmac.compare_digest(hmac_sha256(key, canonical(unsigned)), signature):
        return None, (f"the signature of the head on line {number} does not match: the head was edited, "
                      "or signed with another key under the same id")
    return head, ""
