"""The optional LLM summary: a short summary and next steps, grounded only in cited evidence.

Used only when FLOWDECK_LLM_BASE_URL, FLOWDECK_LLM_API_KEY and FLOWDECK_LLM_MODEL are set
(any OpenAI-compatible endpoint). It runs in a Celery task, never in a request; the call is
time-limited and not retried; the result is cached per incident until the evidence changes.
Secrets and personal data are redacted from the evidence before it leaves the platform.
On any failure the page says so and everything else works.
"""

import hashlib
import json
import re

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.log import record
from apps.celery import app as celery_app
from apps.incidents.models import Incident
from apps.knowledge.models import LlmSummary, SummaryStatus

# Sent by name: the tasks module imports this one to do the work.
SUMMARIZE_TASK = "apps.knowledge.tasks.summarize_incident"

_REDACTIONS = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S), "[private key]"),
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "[access key]"),
    (re.compile(r"(?i)\bbearer\s+[a-z0-9._~+/=-]{8,}"), "Bearer [token]"),
    (re.compile(r"\beyJ[a-zA-Z0-9_-]{5,}\.[a-zA-Z0-9_-]{5,}\.[a-zA-Z0-9_-]*"), "[token]"),
    (re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|client[_-]?secret)"
                r"(\s*[=:]\s*|\"\s*:\s*\")([^\s\",;&]+)"), r"\1\2[redacted]"),
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^\s:/@]+):[^\s@/]+@"), r"\1:[redacted]@"),
    (re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"), "[email]"),
    (re.compile(r"(?<!\w)\+?\d[\d ()-]{8,}\d\b"), "[phone]"),
    (re.compile(r"\b(fd|sk|ghp|xox[abp])_[A-Za-z0-9_-]{10,}\b"), "[token]"),
]


def redact_text(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def is_configured() -> bool:
    return bool(settings.FLOWDECK_LLM_BASE_URL and settings.FLOWDECK_LLM_API_KEY and settings.FLOWDECK_LLM_MODEL)


def build_evidence(incident: Incident) -> tuple[str, list[dict]]:
    """The failure and the cited suggestions, numbered [1]..[n], redacted; and the citation list."""
    from apps.knowledge.incident_ranking import ranking_for

    suggestions = ranking_for(incident, compute=True)
    citations, lines = [], []

    def cite(label: str, url: str, body: str) -> None:
        citations.append({"number": len(citations) + 1, "label": label, "url": url})
        lines.append(f"[{len(citations)}] {label}\n{redact_text(body)}")

    for similar in suggestions.similar_incidents:
        cite(f"Incident #{similar.id}: {similar.title}", similar.citation.url,
             f"Root cause ({similar.category}): {similar.root_cause}\nFix: {similar.resolution}")
    for section in suggestions.runbook_sections:
        cite(section.title, section.citation.url, section.excerpt)
    if suggestions.known_cause:  # a fact Flowdeck recorded, not a guess
        hypotheses = f"KNOWN CAUSE: {suggestions.known_cause.title}; fix: {suggestions.known_cause.fix_label}"
    elif suggestions.sure:
        hypotheses = ", ".join(f"{h.name} ({h.confidence:.0%})" for h in suggestions.hypotheses[:3])
    else:
        hypotheses = "none likely enough to name"
    failure = redact_text("\n".join(p for p in (incident.title, incident.description, incident.error_message,
                                                incident.log_tail[-1500:]) if p))
    evidence = f"FAILURE:\n{failure}\n\nRANKED HYPOTHESES: {hypotheses}\n\nEVIDENCE:\n" + "\n\n".join(lines)
    return evidence, citations


SYSTEM_PROMPT = (
    "You help an operator triage a failed batch job. Use ONLY the numbered evidence given. "
    "Write at most 5 sentences: the most likely cause and 2-3 next steps. Cite evidence as [n] after each claim. "
    "If the evidence does not support a conclusion, say so. Do not invent facts, commands or links."
)


def write_summary(incident_id: int) -> LlmSummary | None:
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        return None
    if not is_configured():
        summary, _ = LlmSummary.objects.update_or_create(incident=incident, defaults={
            "status": SummaryStatus.UNAVAILABLE, "evidence_hash": "", "updated_at": timezone.now()})
        return summary
    evidence, citations = build_evidence(incident)
    evidence_hash = hashlib.sha256((settings.FLOWDECK_LLM_MODEL + evidence).encode()).hexdigest()
    cached = LlmSummary.objects.filter(incident=incident, evidence_hash=evidence_hash,
                                       status=SummaryStatus.READY).first()
    if cached is not None:
        return cached
    from openai import OpenAI, OpenAIError

    client = OpenAI(base_url=settings.FLOWDECK_LLM_BASE_URL, api_key=settings.FLOWDECK_LLM_API_KEY,
                    timeout=settings.FLOWDECK_LLM_TIMEOUT_SECONDS, max_retries=0)
    values = {"evidence_hash": evidence_hash, "citations": citations, "model": settings.FLOWDECK_LLM_MODEL,
              "updated_at": timezone.now()}
    try:
        response = client.chat.completions.create(
            model=settings.FLOWDECK_LLM_MODEL, temperature=0, max_tokens=400,
            messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": evidence}])
        text = (response.choices[0].message.content or "").strip()
        if not text:
            raise ValueError("the model returned an empty answer")
        values.update(status=SummaryStatus.READY, text=text, error="")
    except (OpenAIError, ValueError, KeyError, IndexError, json.JSONDecodeError) as exc:
        values.update(status=SummaryStatus.FAILED, text="", error=f"{type(exc).__name__}: {redact_text(str(exc))}"[:500])
    with transaction.atomic():
        summary, _ = LlmSummary.objects.update_or_create(incident=incident, defaults=values)
        record(None, "incident.summary_written", summary, object_type="knowledge.llmsummary", team=incident.team,
               after={"incident": incident.pk, "status": summary.status, "model": summary.model})
    return summary


@transaction.atomic
def request_summary(user, incident: Incident) -> LlmSummary:
    """Ask for a summary; the Celery task writes it. Without an LLM configured, say so at once."""
    status = SummaryStatus.PENDING if is_configured() else SummaryStatus.UNAVAILABLE
    summary, _ = LlmSummary.objects.update_or_create(incident=incident, defaults={
        "status": status, "evidence_hash": "", "error": "", "updated_at": timezone.now()})
    record(user, "incident.summary_requested", summary, object_type="knowledge.llmsummary", team=incident.team,
           after={"incident": incident.pk, "status": status})
    if status == SummaryStatus.PENDING:
        transaction.on_commit(lambda: celery_app.tasks[SUMMARIZE_TASK].delay(incident.pk))
    return summary
