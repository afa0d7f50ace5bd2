"""Counters for /metrics that any process adds to: a row per counter in the database.

Knowledge queries are answered by every gunicorn worker and Celery worker, on any machine, while
/metrics is answered by one of them; a count kept in process memory would report only the share
of whichever process the scrape reached, and lose it on restart. A row updated with
`value = value + 1` is correct across processes and machines and survives restarts, at the cost
of one short UPDATE per count (the callers count a query that itself takes tens of milliseconds).

Other apps call the named functions below; they import nothing from prometheus-client.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import F

from apps.monitoring.models import MetricCounter

INDEX_QUERIES = "knowledge.index_queries"


def count_index_query() -> None:
    """Count one query served by the knowledge index (suggestions for a failure or incident)."""
    add(INDEX_QUERIES)


def index_queries_total() -> int:
    return value_of(INDEX_QUERIES)


def add(name: str, amount: int = 1) -> None:
    """Add to a counter once the caller's transaction commits (at once outside one), so the
    counter's row lock is never held for the length of someone else's transaction; a counter
    that cannot be written is logged and never fails the caller."""
    transaction.on_commit(lambda: _increment(name, amount), robust=True)


def value_of(name: str) -> int:
    return MetricCounter.objects.filter(name=name).values_list("value", flat=True).first() or 0


def _increment(name: str, amount: int) -> None:
    if MetricCounter.objects.filter(name=name).update(value=F("value") + amount):
        return
    try:
        with transaction.atomic():
            MetricCounter.objects.create(name=name, value=amount)
    except IntegrityError:  # created at the same moment by another process
        MetricCounter.objects.filter(name=name).update(value=F("value") + amount)
