"""What a run page draws from the stored timestamps: the Gantt timeline of its attempts (retry
wait, queued, running, and the time a step waited for a person), a step's progress as a bar, and
why something is still queued.

Everything here reads rows; the SVG itself is templates/runs/_gantt.html.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from apps.platform import liveness
from apps.runs.models import (
    ACTIVE_RUN_STATES,
    AttemptKind,
    AttemptState,
    Run,
    RunState,
    StepAttempt,
)
from apps.runs.templatetags.readable import human_duration
from apps.workflows.plan import plan_for

WIDTH = 960
LABEL_WIDTH = 190
ROW_HEIGHT = 26
AXIS_HEIGHT = 26
TICKS = 5
# A bar shorter than this (in SVG units) is widened so it can be seen and hovered.
MIN_BAR = 3
SEGMENT_LABELS = {"retry_wait": "retry wait", "queued": "queued", "running": "running", "person": "waiting for a person"}


@dataclass
class Segment:
    kind: str
    start: datetime
    end: datetime
    x: float = 0
    width: float = 0

    @property
    def title(self) -> str:
        return f"{SEGMENT_LABELS[self.kind]} {human_duration((self.end - self.start).total_seconds())}"


@dataclass
class Lane:
    label: str
    step_id: str
    state: str
    segments: list[Segment] = field(default_factory=list)
    y: int = 0

    @property
    def summary(self) -> str:
        return f"{self.label}: " + ", ".join(segment.title for segment in self.segments) if self.segments \
            else f"{self.label}: not started"


def _attempt_lane(attempt: StepAttempt, now: datetime) -> Lane:
    kind = "compensation " if attempt.kind == AttemptKind.COMPENSATION else ""
    lane = Lane(f"{attempt.step_run.step_id} · {kind}attempt {attempt.number}", attempt.step_run.step_id,
                attempt.state)
    waiting_ends = attempt.started_at or attempt.ended_at or now
    if attempt.not_before > attempt.queued_at:
        lane.segments.append(Segment("retry_wait", attempt.queued_at, min(attempt.not_before, waiting_ends)))
    queued_from = max(attempt.queued_at, attempt.not_before)
    if waiting_ends > queued_from:
        lane.segments.append(Segment("queued", queued_from, waiting_ends))
    if attempt.started_at:
        lane.segments.append(Segment("running", attempt.started_at, attempt.ended_at or now))
    return lane


def run_timeline(run: Run, attempts: list[StepAttempt], waits: list[tuple], now: datetime | None = None) -> dict:
    """Lanes of the Gantt: one per attempt, and one per approval or checkpoint (`waits`: step id,
    kind, created, decided), placed on one time axis from the run's creation to its end (or now)."""
    now = now or timezone.now()
    lanes = [_attempt_lane(attempt, now) for attempt in attempts]
    for step_id, kind, created_at, decided_at in waits:
        what = "approval" if kind == "gate" else "checkpoint"
        lanes.append(Lane(f"{step_id} · {what}", step_id, "waiting_approval",
                          [Segment("person", created_at, decided_at or now)]))
    lanes.sort(key=lambda lane: lane.segments[0].start if lane.segments else now)
    start = run.created_at
    end = max([run.finished_at or now, *(segment.end for lane in lanes for segment in lane.segments)])
    span = max((end - start).total_seconds(), 1.0)
    scale = (WIDTH - LABEL_WIDTH - 10) / span
    for index, lane in enumerate(lanes):
        lane.y = AXIS_HEIGHT + index * ROW_HEIGHT
        for segment in lane.segments:
            segment.x = round(LABEL_WIDTH + (segment.start - start).total_seconds() * scale, 1)
            segment.width = round(max((segment.end - segment.start).total_seconds() * scale, MIN_BAR), 1)
    ticks = [{"x": round(LABEL_WIDTH + span * i / (TICKS - 1) * scale, 1),
              "label": "start" if i == 0 else f"+{human_duration(span * i / (TICKS - 1))}"} for i in range(TICKS)]
    return {"lanes": lanes, "ticks": ticks, "width": WIDTH, "label_width": LABEL_WIDTH,
            "height": AXIS_HEIGHT + max(len(lanes), 1) * ROW_HEIGHT + 4, "span": human_duration(span)}


def progress_bar(progress: dict | None) -> dict | None:
    """The done/total pair a step reports ("chunks_done"/"chunks_total", or "waited_seconds"/
    "of_seconds") as {done, total, percent, text}; None when it reports no such pair."""
    if not isinstance(progress, dict):
        return None
    pairs = [(key, f"{key[:-5]}_total", key[:-5].replace("_", " ")) for key in progress if key.endswith("_done")]
    pairs += [(key, f"of_{key.split('_', 1)[1]}", key.replace("_", " ")) for key in progress
              if "_" in key and not key.startswith("of_") and not key.endswith("_done")]
    for done_key, total_key, noun in pairs:
        done, total = progress.get(done_key), progress.get(total_key)
        if isinstance(done, (int, float)) and isinstance(total, (int, float)) and total > 0:
            return {"done": done, "total": total, "percent": round(min(done / total, 1) * 100),
                    "text": f"{noun}: {done:g} of {total:g}"}
    return None


def why_queued(run: Run, attempts: list[StepAttempt], now: datetime | None = None) -> list[str]:
    """Why the run, or its queued attempts, wait: the concurrency limit, a retry's backoff, no
    worker consuming the attempt's queue, or none of them free (the workers' liveness records)."""
    now = now or timezone.now()
    reasons, live = [], None  # the live workers, read once when an attempt waits for one
    if run.state == RunState.QUEUED and not attempts:
        plan = plan_for(run.version_id)
        if plan.concurrency is not None:
            active = Run.objects.filter(workflow_id=run.workflow_id).exclude(pk=run.pk) \
                .filter(state__in=ACTIVE_RUN_STATES).count()
            if active >= plan.concurrency:
                reasons.append(f"Concurrency limit: {plan.name} allows {plan.concurrency} run"
                               f"{'s' if plan.concurrency != 1 else ''} at once and {active} "
                               f"{'are' if active != 1 else 'is'} active; this run starts when one ends.")
    for attempt in attempts:
        if attempt.state != AttemptState.QUEUED:
            continue
        step = attempt.step_run.step_id
        if attempt.not_before > now:
            reasons.append(f"{step}: waiting to retry, attempt {attempt.number} is sent in "
                           f"{human_duration((attempt.not_before - now).total_seconds())}.")
            continue
        waited = human_duration((now - max(attempt.queued_at, attempt.not_before)).total_seconds())
        if live is None:
            live = [worker for worker in liveness.workers(now) if worker.alive]
        serving = [worker for worker in live if attempt.queue in worker.queues]
        if not serving:
            reasons.append(f"{step}: no worker consumes queue {attempt.queue} (waiting {waited}): start one with "
                           f"-Q {attempt.queue} (Platform → Workers lists what each worker consumes).")
        elif all(worker.busy >= worker.concurrency for worker in serving):
            reasons.append(f"{step}: no free worker on queue {attempt.queue} for {waited}: its "
                           f"{len(serving)} worker{'s are' if len(serving) != 1 else ' is'} busy with other steps.")
        else:
            reasons.append(f"{step}: waiting for a worker on queue {attempt.queue} for {waited}.")
    return reasons


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None

