"""Run history at a glance, for the workflows list, a workflow's page and a team's dashboard: the
last runs as bars (Airflow's grid), the success rate, p50/p95 durations and the series the charts
draw (duration per run against the SLA, success rate per day, records written).

Cheap on long histories: each read is bounded by an index, never a loop over all runs. The last
runs of a workflow are an index range (`run_workflow_newest_first`) cut at a limit;
rates and daily series are one grouped query over a window of days; percentiles are taken over
the last `STATS_RUNS` finished runs (SQLite has no percentile function, PostgreSQL's would read
the whole window).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NamedTuple

from django.db import connection
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

from apps.runs.models import (
    FINISHED_RUN_STATES,
    AttemptKind,
    AttemptState,
    Run,
    RunState,
    StepAttempt,
)
from apps.runs.templatetags.readable import human_duration

LIST_BARS = 20
PAGE_BARS = 50
# Percentiles over the last this many runs: on a list page, for each of its 25 workflows.
LIST_STATS_RUNS = 50
STATS_RUNS = 100
WINDOW_DAYS = 30
# How long a run took, computed by the database: one value to read per run instead of two timestamps.
TOOK = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
STATE_LABELS = dict(RunState.choices)


@dataclass
class RunBar:
    pk: int
    state: str
    seconds: float | None
    height: int = 100  # percent of the tallest bar

    @property
    def title(self) -> str:
        took = f", {human_duration(self.seconds)}" if self.seconds is not None else ""
        return f"Run #{self.pk}: {STATE_LABELS.get(self.state, self.state)}{took}"


@dataclass
class Summary:
    bars: list[RunBar] = field(default_factory=list)  # oldest first, as Airflow's grid reads
    finished: int = 0  # in the window
    succeeded: int = 0
    p50: float | None = None
    p95: float | None = None

    @property
    def success_rate(self) -> int | None:
        return round(100 * self.succeeded / self.finished) if self.finished else None


@dataclass
class Chart:
    """One chart's data: drawn by Chart.js (static/runs/charts.js) and shown as a table."""

    key: str
    title: str
    kind: str  # "bar" or "line"
    unit: str  # "seconds", "percent" or "records"
    labels: list[str]
    values: list[float | None]
    states: list[str] | None = None  # a bar's colour: its run's state
    links: list[str] | None = None
    threshold: float | None = None
    threshold_label: str = ""

    def shown(self, value) -> str:
        if value is None:
            return "—"
        return {"seconds": human_duration, "percent": lambda v: f"{v:g}%"}.get(self.unit, lambda v: f"{v:,.0f}")(value)

    @property
    def rows(self) -> list[tuple[str, str, str, str]]:
        """(label, link, value as read, state) per point, for the table beneath the chart."""
        return [(label, (self.links or [""] * len(self.labels))[i], self.shown(value),
                 STATE_LABELS.get((self.states or [""] * len(self.labels))[i], ""))
                for i, (label, value) in enumerate(zip(self.labels, self.values))]

    @property
    def script_id(self) -> str:
        return f"chart-{self.key}-data"

    @property
    def data(self) -> dict:
        return {"kind": self.kind, "unit": self.unit, "title": self.title, "labels": self.labels,
                "values": self.values, "states": self.states, "threshold": self.threshold,
                "thresholdLabel": self.threshold_label, "shown": [self.shown(value) for value in self.values]}


class RecentRun(NamedTuple):
    workflow_id: int
    pk: int
    state: str
    seconds: float | None  # from start to finish; None while it has not finished


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile (`share` 0.5 for p50): a value that occurred, as people expect."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


# The last runs of each workflow in one statement, durations as seconds: decoding two thousand
# timestamps and intervals cost more than the query (the workflows list and the dashboard read
# 50 runs of up to 40 workflows).
_RECENT_RUNS_SQL = f"""
    SELECT recent.workflow_id, recent.id, recent.state, EXTRACT(EPOCH FROM recent.took)::float8
    FROM unnest(%s::bigint[]) WITH ORDINALITY AS wanted(workflow_id, position)
    CROSS JOIN LATERAL (
        SELECT run.workflow_id, run.id, run.state, run.created_at, run.finished_at - run.started_at AS took
        FROM {Run._meta.db_table} run WHERE run.workflow_id = wanted.workflow_id
        ORDER BY run.created_at DESC, run.id DESC LIMIT %s
    ) recent
    ORDER BY wanted.position, recent.created_at DESC, recent.id DESC"""


def _recent_runs(workflow_ids: list[int], limit: int) -> dict[int, list[RecentRun]]:
    """The last `limit` runs of each workflow, newest first: an index range each. PostgreSQL reads
    them in one statement; SQLite, in-process, pays no round trip for a query per workflow."""
    grouped: dict[int, list[RecentRun]] = {workflow_id: [] for workflow_id in workflow_ids}
    if not workflow_ids:
        return grouped
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_RECENT_RUNS_SQL, [list(workflow_ids), limit])
            rows = cursor.fetchall()
    else:
        newest = Run.objects.order_by("-created_at", "-id").annotate(took=TOOK) \
            .values_list("workflow_id", "pk", "state", "took")
        rows = [(workflow_id, pk, state, took.total_seconds() if took is not None else None)
                for wanted in workflow_ids
                for workflow_id, pk, state, took in newest.filter(workflow_id=wanted)[:limit]]
    for row in rows:
        grouped[row[0]].append(RecentRun._make(row))
    return grouped


def _bars(runs: list[RecentRun]) -> list[RunBar]:
    bars = [RunBar(run.pk, run.state, run.seconds) for run in reversed(runs)]
    tallest = max((bar.seconds or 0 for bar in bars), default=0)
    for bar in bars:
        bar.height = max(15, round(100 * (bar.seconds or 0) / tallest)) if tallest and bar.seconds else 15
    return bars


def _window_start():
    return timezone.now() - timedelta(days=WINDOW_DAYS)


def _summary(runs: list[RecentRun], bars: int, finished: int, succeeded: int) -> Summary:
    durations = [seconds for run in runs if run.state == RunState.SUCCEEDED
                 and (seconds := run.seconds) is not None]
    return Summary(bars=_bars(runs[:bars]), finished=finished, succeeded=succeeded,
                   p50=percentile(durations, 0.5), p95=percentile(durations, 0.95))


def _rates(**filters) -> dict[int, tuple[int, int]]:
    """(finished, succeeded) per workflow over the window, in one grouped query."""
    grouped = Run.objects.filter(created_at__gte=_window_start(), state__in=FINISHED_RUN_STATES, **filters) \
        .values("workflow_id").annotate(finished=Count("id"), succeeded=Count("id", filter=Q(state=RunState.SUCCEEDED))) \
        .order_by()
    return {row["workflow_id"]: (row["finished"], row["succeeded"]) for row in grouped}


def summaries(workflow_ids: list[int], bars: int = LIST_BARS) -> dict[int, Summary]:
    """Each workflow's last runs and rates (a page of the workflows list: 25 at most)."""
    rates, recent = _rates(workflow_id__in=workflow_ids), _recent_runs(workflow_ids, LIST_STATS_RUNS)
    return {workflow_id: _summary(recent[workflow_id], bars, *rates.get(workflow_id, (0, 0)))
            for workflow_id in workflow_ids}


def _run_links(pks: list[int]) -> list[str]:
    first = reverse("runs:detail", args=[0])
    return [first.replace("/0/", f"/{pk}/") for pk in pks]


def _per_day(**filters) -> list[dict]:
    """Finished runs, successes and the average duration per day of the window: one grouped query."""
    return list(Run.objects.filter(created_at__gte=_window_start(), state__in=FINISHED_RUN_STATES, **filters)
                .annotate(day=TruncDate("created_at")).values("day").order_by("day").annotate(
                    finished=Count("id"), succeeded=Count("id", filter=Q(state=RunState.SUCCEEDED)),
                    average=Avg(TOOK)))


def _success_chart(key: str, days: list[dict]) -> Chart:
    return Chart(key, "Success rate per day", "line", "percent", [day["day"].isoformat() for day in days],
                 [round(100 * day["succeeded"] / day["finished"], 1) if day["finished"] else None for day in days])


def workflow_history(workflow, sla_seconds: float | None) -> tuple[Summary, list[Chart]]:
    """The workflow page's summary and charts: duration per run against the SLA, success rate per
    day, and records written per run where its steps report them."""
    runs = _recent_runs([workflow.pk], STATS_RUNS)[workflow.pk]
    finished, succeeded = _rates(workflow_id=workflow.pk).get(workflow.pk, (0, 0))
    summary = _summary(runs, PAGE_BARS, finished, succeeded)
    timed = [run for run in reversed(runs) if run.seconds is not None]
    pks = [run.pk for run in timed]
    charts = [Chart("duration", "Duration per run", "bar", "seconds", [f"#{pk}" for pk in pks],
                    [round(run.seconds, 1) for run in timed], states=[run.state for run in timed],
                    links=_run_links(pks), threshold=sla_seconds,
                    threshold_label=f"SLA {human_duration(sla_seconds)}" if sla_seconds else "")]
    charts.append(_success_chart("success", _per_day(workflow_id=workflow.pk)))
    records = dict(StepAttempt.objects.filter(step_run__run_id__in=pks, kind=AttemptKind.STEP,
                                              state=AttemptState.SUCCEEDED)
                   .values_list("step_run__run_id").annotate(total=Sum("records_out")).values_list("step_run__run_id",
                                                                                                  "total").order_by())
    if any(records.values()):
        charts.append(Chart("records", "Records written per run", "bar", "records", [f"#{pk}" for pk in pks],
                            [records.get(pk) or 0 for pk in pks], links=_run_links(pks)))
    return summary, charts


def team_dashboard(team) -> list[Chart]:
    """A team's last `WINDOW_DAYS` days: finished runs, success rate and average duration per day,
    in one grouped query. Records written are on each workflow's page: per day over a team they
    would join every attempt of the window's runs (33,000 on the 100k-run bench, 200 ms)."""
    days = _per_day(team=team)
    labels = [day["day"].isoformat() for day in days]
    charts = [
        Chart("team-runs", "Finished runs per day", "bar", "runs", labels, [day["finished"] for day in days]),
        _success_chart("team-success", days),
        Chart("team-duration", "Average duration per day", "line", "seconds", labels,
              [round(day["average"].total_seconds(), 1) if day["average"] else None for day in days]),
    ]
    return charts
