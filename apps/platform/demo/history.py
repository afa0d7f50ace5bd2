"""A few weeks of run history for the demo, from the `history` section of fixtures/demo.yaml:
each workflow's cadence, typical step durations, records read, approvers and the days something
went wrong. Dates are counted back from today; the runs themselves are played and written by
apps.runs.demo, their approvals by apps.approvals.demo."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from apps.approvals.demo import load_decisions
from apps.runs.demo import PastFailure, PastRun, load_history
from apps.runs.models import Run

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _runs_on(every, day: date) -> bool:
    """Whether a workflow with cadence `every` ran on `day`: day, weekday, month:<n> or weekday names."""
    if every == "day":
        return True
    if every == "weekday":
        return day.weekday() < 5
    if isinstance(every, str) and every.startswith("month:"):
        return day.day == int(every.split(":")[1])
    return WEEKDAYS[day.weekday()] in ([every] if isinstance(every, str) else every)


def _month(day: date, back: int = 0) -> str:
    year, month = day.year, day.month - back
    while month < 1:
        year, month = year - 1, month + 12
    return f"{year:04d}-{month:02d}"


def _inputs(template: dict, day: date, n: int) -> dict:
    values = {"yesterday": (day - timedelta(days=1)).isoformat(), "month": _month(day), "last_month": _month(day, 1),
              "n": n, "next_monday": (day + timedelta(days=7 - day.weekday())).isoformat()}
    return {key: value.format(**values) if isinstance(value, str) else value for key, value in template.items()}


def _failure(entry: dict, people: dict) -> PastFailure:
    return PastFailure(step=entry["step"], error_type=entry["error"], message=entry["message"],
                       retried=entry.get("retried", 0), decided_by=people.get(entry.get("decided_by")),
                       decision=entry.get("decision", ""), reason_code=entry.get("reason", ""),
                       comment=entry.get("comment", ""), after_minutes=entry.get("after_minutes", 30))


def _nearest(run_days: list[int], days_ago: int) -> int:
    """The run a failure written for `days_ago` happens to: that day's, else the closest earlier
    run, else the closest later one (a workflow on Tuesdays and Thursdays has no run on most days,
    and which days those are depends on today's weekday)."""
    earlier = [days for days in run_days if days >= days_ago]
    return min(earlier) if earlier else max(run_days)


def past_runs(config: dict, workflows: dict, people: dict, now: datetime) -> list[PastRun]:
    today = now.date()
    runs = []
    for name, story in config["workflows"].items():
        version = workflows[name].current_version
        hour, minute = (int(part) for part in story["at"].split(":"))
        run_days = [days_ago for days_ago in range(config["days"], 0, -1)
                    if _runs_on(story["every"], today - timedelta(days=days_ago))]
        failures = {_nearest(run_days, entry["days_ago"]): entry for entry in story.get("failures", []) if run_days}
        ran_anyway = {days: step for step, days_list in story.get("ran_on", {}).items() for days in days_list}
        n = 0
        for days_ago in run_days:
            day = today - timedelta(days=days_ago)
            n += 1
            runs.append(PastRun(
                version=version, created_at=datetime.combine(day, time(hour, minute), tzinfo=UTC),
                inputs=_inputs(story.get("inputs", {}), day, n), trigger=story["trigger"],
                started_by=people.get(story.get("started_by")), seconds=story["seconds"], rows=story.get("rows", {}),
                outputs=story.get("outputs", {}),
                skipped=frozenset(story.get("skipped", [])) - {ran_anyway.get(days_ago)},
                approvers=[people[username] for username in story.get("approved_by", [])],
                approval_minutes=story.get("approval_minutes", 30),
                failure=_failure(failures[days_ago], people) if days_ago in failures else None))
    return sorted(runs, key=lambda run: run.created_at)


def load(config: dict, workflows: dict, people: dict, now: datetime | None = None) -> int:
    """Load the history once: nothing when the demo workflows already have runs. Returns the run count."""
    if Run.objects.filter(workflow__in=list(workflows.values())).exists():
        return 0
    runs = past_runs(config, workflows, people, now or datetime.now(UTC))
    load_decisions(load_history(runs))
    return len(runs)
