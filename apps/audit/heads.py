"""Signed chain heads: each audit chain's latest event, signed and kept outside the database.

A head names, for every chain, the last event's position and hash, and the number of events, when
it was taken and the id of the key whose HMAC signs it. Checked later against the database, it
detects what the chains alone cannot: a tail deleted, a whole chain rewritten (even as plain,
unkeyed hashes) or removed by someone who can write the database but holds no key. Heads are JSON
lines, so a file of them (or an external store fed with `audit_verify --export-head -`)
accumulates one per export. Heads exported before chains were split per team name one event
(`sequence`, `event_hash`): they are read as the platform chain's, which those events became.
"""

import hmac
import json
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.audit.log import ChainVerdict, canonical, hmac_sha256, latest_purges, signing_key
from apps.audit.models import PLATFORM_CHAIN, AuditEvent

_FIELDS = ("chains", "events", "exported_at", "key_id")
_SINGLE_CHAIN_FIELDS = ("sequence", "event_hash", "events", "exported_at", "key_id")


def signed_head(verdict: ChainVerdict) -> dict:
    """The heads of the chains that `verify_chain()` just found intact, signed with the signing key."""
    key_id, key = signing_key()
    # `position` names each chain's last event; `events` counts those the database holds (fewer after a purge).
    chains = {chain.name: {"position": chain.head_position, "event_hash": chain.head_hash}
              for chain in verdict.chains.values() if chain.head_position}
    head = {"chains": chains, "events": verdict.events_checked, "exported_at": timezone.now().isoformat(),
            "key_id": key_id}
    return {**head, "signature": hmac_sha256(key, canonical(head))}


@dataclass
class HeadsVerdict:
    checked: int = 0
    purged: int = 0  # chain heads naming events that retention removed (before its signed checkpoint)
    problems: list[str] = field(default_factory=list)


def check_heads(lines) -> HeadsVerdict:
    """Check each exported head's signature, then that the database still holds every event it names."""
    verdict = HeadsVerdict()
    heads = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            head, problem = _read_head(number, line)
            if problem:
                verdict.problems.append(problem)
            else:
                heads.append((number, head))
    named = {(chain, int(end["position"])) for _, head in heads for chain, end in head["chains"].items()}
    stored = {}
    if named:
        wanted = Q()
        for chain, position in named:
            wanted |= Q(chain=chain, position=position)
        stored = {(chain, position): event_hash for chain, position, event_hash
                  in AuditEvent.objects.filter(wanted).values_list("chain", "position", "event_hash")}
    # verify_chain() checked the checkpoints' signatures; a head inside a purged range names an
    # event retention removed on purpose (its hash is known only at the checkpoint).
    purged_through = {}
    for chain, purge in latest_purges().items():
        purged_through[chain] = purge.through_position
        stored.setdefault((chain, purge.through_position), purge.through_hash)
    for number, head in heads:
        verdict.checked += 1
        taken = f"line {number} (exported {head['exported_at']})"
        for chain, end in sorted(head["chains"].items()):
            position, title = int(end["position"]), _title(chain)
            if (chain, position) not in stored and position < purged_through.get(chain, 0):
                verdict.purged += 1
            elif (chain, position) not in stored:
                verdict.problems.append(f"{title}: the database holds no event at position {position}, which the "
                                        f"head on {taken} names: events were deleted from the end of the chain")
            elif stored[(chain, position)] != end["event_hash"]:
                verdict.problems.append(f"{title}: the event at position {position} is not the one the head on "
                                        f"{taken} names: the chain up to it was rewritten")
    return verdict


def _title(chain: str) -> str:
    return "the platform chain" if chain == PLATFORM_CHAIN else f"chain {chain}"


def _read_head(number: int, line: str) -> tuple[dict | None, str]:
    try:
        head = json.loads(line)
        names = _SINGLE_CHAIN_FIELDS if "sequence" in head else _FIELDS
        unsigned = {name: head[name] for name in names}
        signature = head["signature"]
        if "sequence" in head:  # exported before the split: the platform chain's head
            head["chains"] = {PLATFORM_CHAIN: {"position": head["sequence"], "event_hash": head["event_hash"]}}
        valid = (all(isinstance(end, dict) and isinstance(end.get("position"), int)
                     and isinstance(end.get("event_hash"), str) for end in head["chains"].values())
                 and isinstance(unsigned["key_id"], str) and isinstance(signature, str))
    except (ValueError, TypeError, KeyError, AttributeError):
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
