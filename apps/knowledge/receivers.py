"""What the knowledge app does when incidents change: re-index them (in Celery), note where the
confirmed root cause ranked among the hypotheses that were shown, and rank a new failure before
anyone opens it."""

from apps.incidents.signals import category_saved, failure_recorded, incident_resolved, incidents_imported


def on_failure_recorded(sender, incident, **kwargs):
    from apps.knowledge.tasks import rank_incident

    rank_incident.delay(incident.pk)


def on_incident_resolved(sender, incident, **kwargs):
    from apps.knowledge.services import record_resolution_outcome
    from apps.knowledge.tasks import index_incidents

    record_resolution_outcome(incident)
    index_incidents.delay([incident.pk])


def on_incidents_imported(sender, incident_ids, **kwargs):
    from apps.knowledge.tasks import index_incidents

    index_incidents.delay(list(incident_ids))


def on_category_saved(sender, category, **kwargs):
    from apps.knowledge.tasks import reindex_categories

    reindex_categories.delay()


def connect() -> None:
    failure_recorded.connect(on_failure_recorded, dispatch_uid="knowledge.on_failure_recorded")
    incident_resolved.connect(on_incident_resolved, dispatch_uid="knowledge.on_incident_resolved")
    incidents_imported.connect(on_incidents_imported, dispatch_uid="knowledge.on_incidents_imported")
    category_saved.connect(on_category_saved, dispatch_uid="knowledge.on_category_saved")
