"""Is a failure worth retrying? The verdict behind `retries: {when: transient}`.

Asked in the worker when an attempt of such a step fails, before the engine decides (outside the
run's lock). Three sources, the first that knows answers:
1. a reason Flowdeck recorded itself (apps.knowledge.known_causes): a fact, confidence 1;
2. an error text Flowdeck's own step types write for a passing trouble (a timeout, a refused
   connection, HTTP 429 or 5xx, a busy or deadlocked database): a rule, confidence 1;
3. the assistant's calibrated ranking of the failure's text; only a headline guess (at or above
   calibration.HEADLINE_THRESHOLD) counts.
Only the TRANSIENT categories are retried. Anything else, including "not sure", goes to the
checkpoint at once: a person decides instead of waiting through retries of a missing connection.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field


# Causes that pass by themselves: the same call a little later has a fair chance to succeed.
# A DNS failure is left out: a misspelt host name never resolves (a passing resolver trouble is
# matched by its text below, as a network failure).
TRANSIENT = frozenset({"network", "dependency-outage", "rate-limited", "lock-contention", "capacity",
                       "resource-exhaustion", "hardware"})

# Error texts of passing trouble, as Flowdeck's step types and common libraries write them.
RULES: tuple[tuple[str, re.Pattern, str], ...] = tuple((category, re.compile(pattern, re.I), label) for
                                                       category, pattern, label in (
    ("rate-limited", r"\banswered 429\b|too many requests|rate.?limit", "the API answered 429 Too Many Requests"),
    ("dependency-outage", r"\banswered 50[234]\b|service unavailable|bad gateway|gateway time-?out",
     "the service answered 502, 503 or 504"),
    ("lock-contention", r"deadlock detected|lock wait timeout|could not obtain lock|database is locked|\bis busy\b",
     "the database was locked by another transaction"),
    ("resource-exhaustion", r"too many (connections|clients)|connection pool|pool limit",
     "the database had no free connection"),
    ("network", r"timed out|timeout|connection (refused|reset|aborted)|cannot connect|could not connect|"
                r"network is unreachable|broken pipe|temporary failure in name resolution|\bConnectError\b",
     "the connection failed or timed out"),
))
# Exception types that name a network failure whatever their message says.
NETWORK_ERRORS = frozenset({"ConnectionError", "ConnectionRefusedError", "ConnectionResetError",
                            "ConnectionAbortedError", "BrokenPipeError", "TimeoutError", "ConnectTimeout",
                            "ReadTimeout", "ConnectError", "RemoteProtocolError"})


@dataclass
class Evidence:
    label: str
    url: str = ""


@dataclass
class RetryVerdict:
    category: str  # a root-cause category slug, "" when nothing was recognised
    name: str  # the category's name, as people read it
    confidence: float | None  # None: not sure (no headline guess)
    source: str  # "known cause", "rule", "assistant" or "none"
    transient: bool
    evidence: list[Evidence] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _name(category: str) -> str:
    from apps.knowledge.learning import category_names

    return category_names([category])[category]


def classify(error_type: str, error_message: str, *, reason: str = "", detail: dict | None = None,
             error_signature: str = "", team_id: int | None = None) -> RetryVerdict:
    """The verdict on one failed attempt (see the module's docstring)."""
    from apps.knowledge.known_causes import MEANINGS, known_cause

    if reason in MEANINGS:
        cause = known_cause(reason, detail)
        category = MEANINGS[reason].category
        return RetryVerdict(category, _name(category), 1.0, "known cause", category in TRANSIENT,
                            [Evidence(f"Flowdeck recorded: {cause.title}", cause.fix_url)])
    text = f"{error_type}: {error_message}"
    for category, pattern, label in RULES:
        if pattern.search(text):
            return RetryVerdict(category, _name(category), 1.0, "rule", True, [Evidence(f"Recognised: {label}")])
    if error_type in NETWORK_ERRORS:
        return RetryVerdict("network", _name("network"), 1.0, "rule", True,
                            [Evidence(f"Recognised: {error_type} is a network error")])
    return _assistant_verdict(text, error_signature, team_id)


def _assistant_verdict(text: str, error_signature: str, team_id: int | None) -> RetryVerdict:
    from apps.knowledge.suggest import suggest_for_failure

    suggestions = suggest_for_failure(text, error_signature, team_ids=[team_id] if team_id else [], limit=3)
    if not suggestions.hypotheses:
        return RetryVerdict("", "", None, "none", False, [Evidence(
            "The assistant has no index to compare with yet" if not suggestions.index_ready
            else "The assistant found nothing like this failure")])
    top = suggestions.hypotheses[0]
    evidence = [Evidence(citation.label, citation.url) for citation in top.citations[:3]]
    if not suggestions.sure:
        return RetryVerdict(top.category, top.name, None, "assistant", False, [
            Evidence(f"Not sure: {top.name} at {top.confidence:.0%} is below the headline threshold"), *evidence])
    return RetryVerdict(top.category, top.name, round(top.confidence, 3), "assistant", top.category in TRANSIENT,
                        [Evidence(f"The assistant's headline guess: {top.name} at {top.confidence:.0%}"), *evidence])

