"""Failures Flowdeck itself understands: what each `Reason` (apps.catalog.registry) means, its
fix as a link, and its section of runbooks/flowdeck-step-failures.md.

A recognised reason is a fact the machinery recorded, not a guess: the assistant shows it first,
without a confidence, and needs neither the model nor the index to do so.
"""

from dataclasses import dataclass
from urllib.parse import urlencode

from django.urls import NoReverseMatch, reverse

from apps.catalog.registry import Reason

RUNBOOK_PATH = "flowdeck-step-failures.md"


@dataclass
class KnownCause:
    reason: str
    title: str
    fix_label: str
    fix_url: str
    category: str  # the root-cause category it belongs to, for resolving the incident
    fixed_by: str = ""  # who may use the fix's page, when not everyone who sees the failure
    runbook_title: str = ""
    runbook_url: str = ""


@dataclass(frozen=True)
class _Meaning:
    title: str  # formatted with the failure's detail
    fix_label: str
    fix: str  # which page fixes it (see _fix_url)
    anchor: str  # section of RUNBOOK_PATH
    category: str


MEANINGS = {
    Reason.CONNECTION_MISSING: _Meaning(
        "There is no connection “{connection}” this team may use", "Add connection “{connection}”",
        "connection_create", "missing-connection", "config-change"),
    Reason.HOST_NOT_ALLOWED: _Meaning(
        "Host {host} is not on the allow-list", "Allow host {host}", "allowed_hosts",
        "host-not-on-the-allow-list", "config-change"),
    Reason.INVALID_PARAMETERS: _Meaning(
        "The step's parameters break its schema", "Edit the step's parameters", "workflow_edit",
        "invalid-step-parameters", "human-error"),
    Reason.SECRET_UNREADABLE: _Meaning(
        "The secret of connection “{connection}” cannot be decrypted", "Set the secret of “{connection}” again",
        "connection_edit", "secret-cannot-be-decrypted", "config-change"),
    Reason.DATA_FILE_MISSING: _Meaning(
        "Data file {file} is missing", "Check the file the step reads", "step",
        "data-file-missing", "upstream-late"),
    Reason.TIMEOUT: _Meaning(
        "The step ran past its timeout of {timeout_seconds} s", "Raise the step's timeout", "workflow_edit",
        "step-timed-out", "capacity"),
    Reason.WORKER_LOST: _Meaning(
        "The worker running the step stopped answering", "Check the workers", "workers",
        "worker-lost", "hardware"),
    Reason.QUALITY_GATE_FAILED: _Meaning(
        "Data checks failed: {checks}", "See which checks failed", "step",
        "quality-gate-failed", "data-quality"),
    Reason.HTTP_CLIENT_ERROR: _Meaning(
        "The API refused the request ({status})", "Fix the request in the workflow", "workflow_edit",
        "request-refused-by-the-api", "config-change"),
}


class _Detail(dict):
    """The values a title is formatted with: a missing one reads as "?" instead of failing."""

    def __missing__(self, key):
        return "?"


def _url(name: str, *args, query: dict | None = None, anchor: str = "") -> str:
    try:
        url = reverse(name, args=args)
    except NoReverseMatch:  # pages not mounted (a worker without the web URLs)
        return ""
    return url + (f"?{urlencode(query)}" if query else "") + (f"#{anchor}" if anchor else "")


# Whose page each fix is on: the others are the workflow's author's or anyone's.
FIXED_BY = {"connection_create": "a platform admin", "connection_edit": "a platform admin",
            "allowed_hosts": "a platform admin", "workers": "a platform admin", "workflow_edit": "an author"}


def _fix_url(fix: str, detail: dict, *, workflow_id, run_id, step_id: str) -> str:
    if fix == "connection_create":
        return _url("catalog:connection_create", query={"name": detail.get("connection", "")})
    if fix == "connection_edit" and detail.get("connection"):
        return _url("catalog:connection_edit", detail["connection"])
    if fix == "allowed_hosts":
        return _url("catalog:connections", query={"host": detail.get("host", "")}, anchor="allowed-hosts")
    if fix == "workers":
        return _url("platform:workers")
    if fix == "workflow_edit" and workflow_id:
        return _url("workflows:edit", workflow_id)
    if fix in ("step", "workflow_edit") and run_id and step_id:
        return _url("runs:step", run_id, step_id)
    return ""


def known_cause(reason: str, detail: dict | None, *, workflow_id=None, run_id=None, step_id: str = "",
                runbook_sections: dict[str, tuple[str, str]] | None = None) -> KnownCause | None:
    """The known cause of a failure with `reason`, or None for a failure Flowdeck did not name.
    `runbook_sections` maps an anchor of RUNBOOK_PATH to (title, url), see `runbook_links`."""
    meaning = MEANINGS.get(reason)
    if meaning is None:
        return None
    values = _Detail({key: ", ".join(map(str, value)) if isinstance(value, list) else value
                      for key, value in (detail or {}).items()})
    runbook_title, runbook_url = (runbook_sections or {}).get(meaning.anchor, ("", ""))
    return KnownCause(
        reason=reason, title=meaning.title.format_map(values), fix_label=meaning.fix_label.format_map(values),
        fix_url=_fix_url(meaning.fix, detail or {}, workflow_id=workflow_id, run_id=run_id, step_id=step_id),
        category=meaning.category, fixed_by=FIXED_BY.get(meaning.fix, ""), runbook_title=runbook_title, runbook_url=runbook_url)


def runbook_links() -> dict[str, tuple[str, str]]:
    """(title, url) of each section of the runbook of Flowdeck's own failures, by anchor."""
    from apps.knowledge.models import RunbookSection

    sections = RunbookSection.objects.filter(runbook__path=RUNBOOK_PATH).select_related("runbook")
    return {s.anchor: (f"{s.runbook.title} › {s.heading}", _url("knowledge:runbook", s.runbook_id, anchor=s.anchor))
            for s in sections}
