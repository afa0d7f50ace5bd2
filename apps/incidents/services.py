"""Domain functions of the incidents app: the only code that writes incidents and categories.

Every change locks the incident row, re-checks its state, writes an audit event, and raises
IncidentError when the change is not allowed (views turn that into 409).
"""

from django.db import transaction
from django.utils import timezone

from apps.audit.log import record
from apps.incidents import taxonomy
from apps.incidents.models import Incident, IncidentOccurrence, IncidentSource, IncidentStatus, RootCauseCategory
from apps.incidents.signals import category_saved, failure_recorded, incident_resolved

OPEN_STATES = (IncidentStatus.OPEN, IncidentStatus.INVESTIGATING)


class IncidentError(Exception):
    """A change to an incident that its current state does not allow."""


def category_for_label(label: str, actor=None) -> RootCauseCategory:
    """The category an import label means; an unknown label is accepted as a new category."""
    slug = taxonomy.canonical_slug(label)
    if not slug:
        raise IncidentError(f"Root-cause category {label!r} has no letters or digits; use a name like 'disk-full'.")
    category = RootCauseCategory.objects.filter(slug=slug).first()
    if category is None:
        category = RootCauseCategory.objects.create(slug=slug, name=label.strip()[:120])
        record(actor, "root_cause_category.created", category, after={"slug": slug, "name": category.name})
    return category


@transaction.atomic
def save_category(actor, *, slug: str, name: str, description: str, is_active: bool = True) -> RootCauseCategory:
    category, created = RootCauseCategory.objects.select_for_update().get_or_create(
        slug=slug, defaults={"name": name, "description": description, "is_active": is_active})
    before = None if created else {"name": category.name, "description": category.description,
                                   "is_active": category.is_active}
    category.name, category.description, category.is_active = name, description, is_active
    category.save()
    record(actor, "root_cause_category.saved", category, before=before,
           after={"name": name, "description": description, "is_active": is_active})
    transaction.on_commit(lambda: category_saved.send(sender=RootCauseCategory, category=category))
    return category


@transaction.atomic
def open_incident(actor, *, team, title: str, description: str = "", error_message: str = "",
                  occurred_at=None) -> Incident:
    """Open an incident by hand, for a failure the platform did not see (or saw differently)."""
    now = timezone.now()
    incident = Incident.objects.create(
        team=team, title=title, description=description, error_message=error_message,
        source=IncidentSource.MANUAL, opened_by=actor, owner=actor,
        occurred_at=occurred_at or now, last_seen_at=occurred_at or now,
    )
    record(actor, "incident.opened", incident, after={"title": title, "source": incident.source})
    return incident


@transaction.atomic
def record_failure(*, team, title: str, workflow=None, workflow_version=None, run_id=None, step_run_id=None,
                   step_id: str = "", step_type: str = "", inputs=None, error_type: str = "",
                   error_message: str = "", error_signature: str = "", error_reason: str = "",
                   error_detail=None, log_tail: str = "") -> tuple[Incident, bool]:
    """Open an incident for a failing step, or link a recurrence to the one already open.

    A failure joins the open incident of the same run and step (a retry that failed again, even
    with another error), else the open one of the same (workflow, step, error signature), so a
    flapping job adds occurrences instead of a pile of duplicates. Returns (incident, created).
    """
    now = timezone.now()
    open_incidents = Incident.objects.select_for_update().filter(team=team, workflow=workflow, step_id=step_id,
                                                                status__in=OPEN_STATES).order_by("pk")
    existing = None
    if run_id is not None:
        existing = open_incidents.filter(occurrence_log__run_id=run_id).first()
    existing = existing or open_incidents.filter(error_signature=error_signature).first()
    if existing is not None:
        existing.occurrences += 1
        existing.last_seen_at = now
        # The latest failure is the one to act on: its words, its reason.
        existing.error_type, existing.error_message = error_type[:200], error_message
        existing.error_reason, existing.error_detail = error_reason, error_detail or {}
        existing.save(update_fields=["occurrences", "last_seen_at", "error_type", "error_message", "error_reason",
                                     "error_detail"])
        IncidentOccurrence.objects.create(incident=existing, run_id=run_id, step_run_id=step_run_id,
                                          error_message=error_message[:5000], occurred_at=now)
        record(None, "incident.recurred", existing, after={"run_id": run_id, "occurrences": existing.occurrences})
        _announce_failure(existing)
        return existing, False
    incident = Incident.objects.create(
        team=team, title=title[:300], source=IncidentSource.RUN_FAILURE, workflow=workflow,
        workflow_version=workflow_version, run_id=run_id, step_id=step_id, step_type=step_type,
        inputs=inputs or {}, error_type=error_type[:200], error_message=error_message,
        error_signature=error_signature[:500], error_reason=error_reason, error_detail=error_detail or {},
        log_tail=log_tail[-20000:], occurred_at=now, last_seen_at=now,
    )
    IncidentOccurrence.objects.create(incident=incident, run_id=run_id, step_run_id=step_run_id,
                                      error_message=error_message[:5000], occurred_at=now)
    record(None, "incident.opened", incident, after={"title": incident.title, "source": incident.source,
                                                     "run_id": run_id, "step_id": step_id})
    _announce_failure(incident)
    return incident, True


def _announce_failure(incident: Incident) -> None:
    transaction.on_commit(lambda: failure_recorded.send(sender=Incident, incident=incident))


@transaction.atomic
def resolve_by_decision(actor, *, resolution: str, run_id: int, step_run_id: int | None = None) -> list[Incident]:
    """Resolve the open incidents of a failure that was settled: its step skipped (`step_run_id`),
    or its run compensated, aborted or succeeded. The decision is the resolution; the root cause
    stays to be named (`resolve` still accepts one). An incident that also occurred in another
    run still waiting for a decision stays open."""
    occurrences = IncidentOccurrence.objects.filter(run_id=run_id)
    if step_run_id is not None:
        occurrences = occurrences.filter(step_run_id=step_run_id)
    incidents = Incident.objects.select_for_update().filter(
        pk__in=occurrences.values("incident_id"), status__in=OPEN_STATES).order_by("pk")
    resolved = []
    for incident in incidents:
        if _waits_elsewhere(incident, run_id):
            continue
        before = {"status": incident.status}
        incident.status, incident.resolution = IncidentStatus.RESOLVED, resolution[:5000]
        incident.resolved_by, incident.resolved_at = actor, timezone.now()
        incident.save(update_fields=["status", "resolution", "resolved_by", "resolved_at"])
        record(actor, "incident.resolved", incident, before=before,
               after={"status": incident.status, "resolution": incident.resolution, "by_decision": True})
        resolved.append(incident)
    return resolved


def _waits_elsewhere(incident: Incident, run_id: int) -> bool:
    from apps.runs.models import Run, RunState

    other_runs = incident.occurrence_log.exclude(run_id=run_id).exclude(run_id=None).values("run_id")
    return Run.objects.filter(pk__in=other_runs, state=RunState.PAUSED).exists()


def _locked(incident_id: int) -> Incident:
    return Incident.objects.select_for_update().get(pk=incident_id)


@transaction.atomic
def take_ownership(actor, incident_id: int) -> Incident:
    """The actor owns the incident and starts investigating it."""
    incident = _locked(incident_id)
    if incident.status == IncidentStatus.RESOLVED:
        raise IncidentError("This incident is resolved; open a new one if the failure is back.")
    before = {"owner": incident.owner.username if incident.owner else None, "status": incident.status}
    incident.owner, incident.status = actor, IncidentStatus.INVESTIGATING
    incident.save(update_fields=["owner", "status"])
    record(actor, "incident.investigating", incident, before=before,
           after={"owner": actor.username, "status": incident.status})
    return incident


@transaction.atomic
def resolve(actor, incident_id: int, *, category: RootCauseCategory, root_cause_description: str,
            resolution: str) -> Incident:
    incident = _locked(incident_id)
    # Resolved by a decision (skip, abort, ...), an incident still takes its root cause.
    if incident.status == IncidentStatus.RESOLVED and incident.root_cause_category_id is not None:
        raise IncidentError("This incident is already resolved.")
    if not root_cause_description.strip() or not resolution.strip():
        raise IncidentError("Say what the root cause was and what fixed it: the next operator learns from both.")
    before = {"status": incident.status}
    incident.status = IncidentStatus.RESOLVED
    incident.root_cause_category = category
    incident.root_cause_description = root_cause_description.strip()
    incident.resolution = resolution.strip()
    incident.resolved_by, incident.resolved_at = actor, timezone.now()
    incident.save()
    record(actor, "incident.resolved", incident, before=before, after={
        "status": incident.status, "root_cause_category": category.slug,
        "root_cause_description": incident.root_cause_description, "resolution": incident.resolution,
    })
    transaction.on_commit(lambda: incident_resolved.send(sender=Incident, incident=incident))
    return incident
