"""Git syncs run by the worker: on a schedule (django-celery-beat, see apps.py) and on a webhook."""

from celery import shared_task

from apps.workflows import gitsync
from apps.workflows.models import GitSource


@shared_task(name="flowdeck.workflows.sync_git_source", ignore_result=True)
def sync_git_source(source_id: int, trigger: str) -> None:
    source = GitSource.objects.filter(pk=source_id).first()
    if source is None:  # deleted since the webhook arrived
        return
    try:
        gitsync.sync(source, trigger=trigger)
    except gitsync.SyncBusy:
        pass  # the running sync fetches the same branch


@shared_task(name="flowdeck.workflows.sync_git_sources", ignore_result=True)
def sync_git_sources() -> None:
    """Every source whose branch moved since its last sync."""
    for source in GitSource.objects.all():
        try:
            gitsync.sync(source, trigger="schedule", only_if_new=True)
        except gitsync.SyncBusy:
            continue
