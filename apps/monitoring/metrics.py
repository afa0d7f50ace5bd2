"""The Prometheus /metrics endpoint: a collector that reads the database (and asks the broker
for its queue depths) at scrape time, so every process (web, workers) reports the same numbers
and nothing is kept in memory. A broker that does not answer within a couple of seconds is
reported as `flowdeck_broker_up 0`; the other series are still served.

Protected by a bearer token (FLOWDECK_METRICS_TOKEN); without the right one it answers 401 with
a one-line hint (scrapers and people see why), and without one configured nothing is published.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from apps.logging import get_logger
from apps.monitoring.broker_queues import BrokerUnavailable, known_queues, message_counts
from apps.monitoring.counters import index_queries_total
from apps.monitoring.models import Alert, AlertState, SlaState, SlaStatus
from apps.runs.models import AttemptKind, AttemptState, Run, RunState, StepAttempt, StepRun, StepState

DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600)
logger = get_logger("flowdeck.monitoring")


def metrics_token() -> str:
    return settings.FLOWDECK_METRICS_TOKEN


class FlowdeckCollector:
    def collect(self):
        runs = GaugeMetricFamily("flowdeck_runs", "Runs by state.", labels=["state"])
        counts = dict(Run.objects.values_list("state").annotate(n=Count("pk")).values_list("state", "n"))
        for state in RunState.values:
            runs.add_metric([state], counts.get(state, 0))
        yield runs
        yield self._step_durations()
        queued = GaugeMetricFamily("flowdeck_queue_depth", "Step attempts queued for each queue, by the database.",
                                   labels=["queue"])
        for queue, depth in StepAttempt.objects.filter(state=AttemptState.QUEUED).values_list("queue") \
                .annotate(n=Count("pk")).values_list("queue", "n"):
            queued.add_metric([queue], depth)
        yield queued
        yield from self._broker_queues()
        yield GaugeMetricFamily("flowdeck_pending_approvals", "Steps waiting for an approval decision.",
                                value=StepRun.objects.filter(state=StepState.WAITING_APPROVAL).count())
        yield CounterMetricFamily("flowdeck_sla_breaches", "Runs that missed their SLA.",
                                  value=SlaStatus.objects.filter(state=SlaState.BREACHED).count())
        yield GaugeMetricFamily("flowdeck_sla_at_risk", "Unfinished runs predicted to miss their SLA.",
                                value=SlaStatus.objects.filter(state=SlaState.AT_RISK).count())
        alerts = GaugeMetricFamily("flowdeck_open_alerts", "Open alerts by kind.", labels=["kind"])
        for kind, n in Alert.objects.filter(state=AlertState.OPEN).values_list("kind").annotate(n=Count("pk")) \
                .values_list("kind", "n"):
            alerts.add_metric([kind], n)
        yield alerts
        yield CounterMetricFamily("flowdeck_index_queries", "Queries served by the knowledge index, by every process.",
                                  value=index_queries_total())

    def _step_durations(self):
        histogram = HistogramMetricFamily("flowdeck_step_duration_seconds", "Durations of finished step attempts.",
                                          labels=["step_type"])
        aggregates = {f"le_{i}": Count("pk", filter=Q(duration_ms__lte=bound * 1000))
                      for i, bound in enumerate(DURATION_BUCKETS)}
        rows = StepAttempt.objects.filter(kind=AttemptKind.STEP, duration_ms__isnull=False) \
            .values("step_type").annotate(total=Count("pk"), sum_ms=Sum("duration_ms"), **aggregates)
        for row in rows:
            buckets = [(str(bound), row[f"le_{i}"]) for i, bound in enumerate(DURATION_BUCKETS)]
            histogram.add_metric([row["step_type"]], buckets + [("+Inf", row["total"])], row["sum_ms"] / 1000)
        return histogram

    def _broker_queues(self):
        up = GaugeMetricFamily("flowdeck_broker_up", "1 when the broker answered the queue-depth question in time.")
        try:
            counts = message_counts(known_queues())
        except BrokerUnavailable as exc:
            logger.warning("broker queue depths unavailable", error=str(exc))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        messages = GaugeMetricFamily("flowdeck_broker_queue_messages", "Messages waiting in each queue, counted by "
                                     "the broker (a queue it has never seen holds 0).", labels=["queue"])
        for queue, count in counts.items():
            messages.add_metric([queue], count or 0)
        yield messages


def metrics_view(request):
    token = metrics_token()
    given = request.headers.get("Authorization", "")
    if not token or not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        hint = ("Send Authorization: Bearer <FLOWDECK_METRICS_TOKEN>." if token
                else "Metrics are off: set FLOWDECK_METRICS_TOKEN, then send Authorization: Bearer <that token>.")
        response = HttpResponse(hint + "\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="flowdeck-metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FlowdeckCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
