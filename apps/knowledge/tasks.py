"""Celery tasks of the knowledge app. They take primary keys, re-fetch, and tolerate redelivery:
re-indexing the same incident or runbook twice leaves the same index."""

from celery import shared_task

from apps.knowledge import indexing


@shared_task(acks_late=True)
def index_incidents(incident_ids: list[int]) -> None:
    indexing.reindex_incidents(incident_ids)


@shared_task(acks_late=True)
def sync_runbooks() -> None:
    from apps.knowledge.runbooks import sync_runbooks as sync

    changed, removed = sync()
    if changed or removed:
        indexing.reindex_runbooks(changed, removed)


@shared_task(acks_late=True)
def reindex_categories() -> None:
    indexing.reindex_categories()


@shared_task(acks_late=True)
def rebuild_index(requested_by_id: int | None = None) -> None:
    from apps.accounts.models import User
    from apps.knowledge.runbooks import sync_runbooks as sync

    sync()
    indexing.build_index(requested_by=User.objects.filter(pk=requested_by_id).first())
    learn_evidence_weights()


@shared_task(acks_late=True)
def learn_evidence_weights() -> None:
    from apps.knowledge.learning import learn_fusion

    learn_fusion()


@shared_task(acks_late=True, soft_time_limit=120)
def summarize_incident(incident_id: int) -> None:
    from apps.knowledge.llm import write_summary

    write_summary(incident_id)


@shared_task(acks_late=True)
def rank_incident(incident_id: int) -> None:
    """Compute the incident's ranking if it is missing or stale (a redelivery finds it stored)."""
    from apps.incidents.models import Incident
    from apps.knowledge.incident_ranking import ranking_for

    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is not None:
        ranking_for(incident, compute=True)


@shared_task(acks_late=True)
def adapt_model() -> None:
    """Adapt the sentence space to the history, adopted only when better (adoption.py)."""
    from apps.knowledge.adoption import adapt_and_rebuild

    adapt_and_rebuild()
