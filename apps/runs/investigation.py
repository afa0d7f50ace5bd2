"""What changed before a step failed: the evidence an SRE collects before looking for similar
incidents (after RCACopilot's per-alert diagnostic collection).

`investigate(step_run)` compares the step's latest failed attempt with the last successful run
of the same step of the same workflow (version, rendered parameters, run inputs, connections
changed since, records read and duration against the usual range, the queue and the worker),
looks at the steps it needs in this run (failed, skipped, slow) and at the team's other runs
failing with the same error signature around the same time. Each `Fact` says it in plain words,
links to where to look, and carries category hints: how much it raises the log-odds of root-cause
categories in the ranking (apps.knowledge.incident_ranking bounds their sum).

Everything but the other runs failing is measured up to the failure (a connection fixed after it
is not a cause), so the facts of a failure stay the same when it is looked at later, and so does
the ranking built on them; other runs failing count until an hour after it.
Cheap by construction: a handful of indexed queries, the history bounded to the last LOOKBACK runs.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.timesince import timesince

from apps.audit.log import redact
from apps.runs.changes import value_changes
from apps.runs.models import AttemptKind, AttemptState, Run, StepAttempt, StepRun, StepState

# How far back the last success is looked for: "never succeeded" means "not in the last LOOKBACK runs".
LOOKBACK = 1000
# Successes that make the usual range of the duration and the records read.
USUAL_SAMPLE = 20
# Runs whose steps make the usual duration of the steps it needs.
UPSTREAM_SAMPLE = 20
# Other runs failing with the same signature this close to the failure count as "now".
SAME_SIGNATURE_WINDOW = timedelta(hours=1)
SAME_SIGNATURE_ROWS = 200  # failed attempts read at most (an outage is "200+")
# Past the usual range: slower than its slowest usual run by this factor, reading less than half
# its fewest or more than twice its most records.
SLOWER = 1.5
MIN_USUAL = 3  # successes needed before a range counts as usual
SHOWN_NAMES = 3  # values and runs named in one fact

# Log-odds each kind of fact adds to root-cause categories (apps/incidents/taxonomy.py). Small on
# purpose: a fact is circumstantial (a version changed is common, and the failure may be unrelated),
# so it moves close hypotheses and never outweighs what the error text says; the knowledge app caps
# the sum per category. A changed connection is the strongest: it is the usual cause of a step that
# worked and suddenly cannot connect, read or authenticate.
HINTS = {
    "version": {"bad-deploy": 0.5, "config-change": 0.4},
    "parameters": {"config-change": 0.5, "human-error": 0.3},
    # The same template rendered other values (a date, an input): shown, but evidence of nothing.
    "rendered": {},
    "inputs": {"data-quality": 0.3, "human-error": 0.2},
    "connection": {"config-change": 0.8, "credentials-expired": 0.3},
    "queue": {"config-change": 0.3, "capacity": 0.2},
    "worker": {"hardware": 0.2},
    "records_low": {"upstream-late": 0.5, "data-quality": 0.3},
    "records_high": {"capacity": 0.3, "out-of-memory": 0.3, "duplicate-data": 0.2},
    "slow": {"capacity": 0.3, "lock-contention": 0.2, "network": 0.2},
    "upstream": {"upstream-late": 0.6},
    "same_signature": {"dependency-outage": 0.6, "network": 0.4},
    "no_success": {},
}


@dataclass
class Fact:
    kind: str  # a key of HINTS
    text: str
    url: str = ""
    link_label: str = ""
    hints: dict[str, float] = field(default_factory=dict)  # category slug -> log-odds it adds

    @property
    def weighs_toward(self) -> str:
        """The categories it raises, in words, strongest first."""
        return ", ".join(slug.replace("-", " ") for slug, _ in sorted(self.hints.items(), key=lambda h: -h[1]))


def _fact(kind: str, text: str, url: str = "", link_label: str = "") -> Fact:
    return Fact(kind=kind, text=text, url=url, link_label=link_label if url else "", hints=dict(HINTS[kind]))


def _url(name: str, *args, query: str = "") -> str:
    try:
        return reverse(name, args=args) + (f"?{query}" if query else "")
    except NoReverseMatch:  # pages not mounted (a worker without the web URLs)
        return ""


def failed_attempt(step_run: StepRun) -> StepAttempt | None:
    return (step_run.attempts.filter(kind=AttemptKind.STEP, state=AttemptState.FAILED)
            .order_by("-number").first())


def investigate(step_run: StepRun) -> list[Fact]:
    """The facts about the latest failure of `step_run`, most telling first; [] when it never failed."""
    failed = failed_attempt(step_run)
    if failed is None:
        return []
    run = Run.objects.select_related("version").get(pk=step_run.run_id)
    failed_at = failed.ended_at or timezone.now()
    # The workflow's earlier runs, newest first, as an index range; then their step rows by the
    # unique (run, step) index. A join filtered on the attempt's state read every attempt of that
    # state instead (140 ms over 50k runs on SQLite).
    earlier = list(Run.objects.filter(workflow_id=run.workflow_id, created_at__lt=run.created_at)
                   .order_by("-created_at", "-id").values_list("pk", flat=True)[:LOOKBACK])
    successes = _last_successes(earlier, step_run.step_id)
    facts = []
    if successes:
        facts += _against_last_success(run, step_run, failed, failed_at, successes)
    else:
        facts.append(_fact("no_success", f"No earlier run of this workflow ran step “{step_run.step_id}” "
                                         f"successfully (in its last {LOOKBACK} runs): there is no earlier success "
                                         "to compare with."))
    facts += _upstream(run, step_run, earlier[:UPSTREAM_SAMPLE])
    facts += _same_signature(run, failed, failed_at)
    # Most telling first ("nothing to compare with" stays first: it says what the rest is).
    return sorted(facts, key=lambda fact: (fact.kind != "no_success", -max(fact.hints.values(), default=0)))


def _last_successes(earlier: list[int], step_id: str) -> list[StepAttempt]:
    """The successful attempts of `step_id` in runs `earlier` (newest first), at most USUAL_SAMPLE."""
    newest = {run_id: order for order, run_id in enumerate(earlier)}
    # No ORDER BY: the step runs' default one joins the runs to sort by theirs.
    rows = sorted(StepRun.objects.filter(run_id__in=earlier, step_id=step_id, state=StepState.SUCCEEDED)
                  .order_by().values_list("run_id", "pk"), key=lambda row: newest[row[0]])[:USUAL_SAMPLE]
    order = {pk: newest[run_id] for run_id, pk in rows}
    # The state is checked here: filtered in SQL, the planner reads every succeeded attempt by its index.
    attempts = [attempt for attempt in StepAttempt.objects.filter(step_run_id__in=list(order), kind=AttemptKind.STEP)
                .order_by().select_related("step_run__run__version") if attempt.state == AttemptState.SUCCEEDED]
    return sorted(attempts, key=lambda attempt: (order[attempt.step_run_id], -attempt.number))


def _against_last_success(run: Run, step_run: StepRun, failed: StepAttempt, failed_at, successes) -> list[Fact]:
    last = successes[0]
    last_run = last.step_run.run
    since = f"the last success (run #{last_run.pk})"
    last_url = _url("runs:step", last_run.pk, step_run.step_id)
    facts = []
    if last_run.version_id != run.version_id:
        facts.append(_fact(
            "version", f"The workflow changed since {since}: it ran v{last_run.version.number}, this run v"
                       f"{run.version.number}.",
            _url("workflows:diff", run.workflow_id, query=f"from={last_run.version.number}&to={run.version.number}"),
            "compare the versions"))
    changes = value_changes(redact(last.params), redact(failed.params), redact(last_run.inputs), redact(run.inputs))
    written = _written_changes(last_run, run, step_run)
    groups = (("parameters", "parameter", [c for c in changes if c.where == "parameter" and c.name in written], ""),
              ("rendered", "parameter", [c for c in changes if c.where == "parameter" and c.name not in written],
               " (written the same: only what they are rendered from changed)"),
              ("inputs", "run input", [c for c in changes if c.where == "input"], ""))
    for kind, noun, found, note in groups:
        if found:
            facts.append(_fact(kind, f"{len(found)} {noun}{'s differ' if len(found) > 1 else ' differs'} from "
                                     f"{since}{note}: {_listed(found)}.", last_url, f"run #{last_run.pk}"))
    facts += _connections_changed(failed, last, failed_at, since)
    facts += _usual_range(failed, successes, since)
    if last.queue != failed.queue:
        facts.append(_fact("queue", f"It ran on queue “{failed.queue}”; {since} ran on “{last.queue}”.",
                           last_url, f"run #{last_run.pk}"))
    if failed.worker and failed.worker not in {attempt.worker for attempt in successes}:
        facts.append(_fact("worker", f"It ran on worker {failed.worker}, which ran none of its last "
                                     f"{len(successes)} successes.", _url("platform:workers"), "workers"))
    return facts


def _written_changes(last_run: Run, run: Run, step_run: StepRun) -> set[str]:
    """The parameters whose value as written differs: in the spec of the two versions, or set by an
    operator's retry. The others only rendered differently (a date, an input), which says little."""
    names = set(step_run.params_override or {})
    if last_run.version_id != run.version_id:
        before, now = last_run.version.plan.steps.get(step_run.step_id), run.version.plan.steps.get(step_run.step_id)
        written_before, written_now = (before.params if before else {}) or {}, (now.params if now else {}) or {}
        names |= {change.name for change in value_changes(written_before, written_now, {}, {})}
    return names


def _listed(changes) -> str:
    named = [f"“{c.name}” {'was not set' if c.before is None else 'was ' + _short(c.before)}, "
             f"{'now not set' if c.now is None else 'now ' + _short(c.now)}" for c in changes[:SHOWN_NAMES]]
    more = len(changes) - SHOWN_NAMES
    return "; ".join(named) + (f"; and {more} more" if more > 0 else "")


def _short(shown: str, limit: int = 60) -> str:
    return shown if len(shown) <= limit else shown[:limit - 1] + "…"


def connection_names(params) -> set[str]:
    """The connections a step's parameters name (`connection: <name>`, at any depth)."""
    found = set()
    stack = [params]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "connection" and isinstance(item, str):
                    found.add(item)
                else:
                    stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
    return found


def _connections_changed(failed: StepAttempt, last: StepAttempt, failed_at, since: str) -> list[Fact]:
    from apps.audit.models import AuditEvent
    from apps.catalog.models import Connection

    names = connection_names(failed.params) | connection_names(failed.error_detail or {})
    if not names or last.ended_at is None:
        return []
    changed = list(Connection.objects.filter(name__in=names, updated_at__gt=last.ended_at,
                                             updated_at__lte=failed_at).order_by("-updated_at"))
    if not changed:
        return []
    # What changed, from the audit log (the field names and whether the secret was replaced, never values).
    what: dict[str, set[str]] = {str(c.pk): set() for c in changed}
    for object_id, action, after in AuditEvent.objects.filter(
            object_type=Connection._meta.label_lower, object_id__in=list(what), occurred_at__gt=last.ended_at,
            occurred_at__lte=failed_at).values_list("object_id", "action", "after"):
        what[object_id] |= _changed_parts(action, after)
    facts = []
    for connection in changed:
        parts = what[str(connection.pk)]
        verb = "was created" if connection.created_at > last.ended_at else "changed"
        detail = f" ({', '.join(sorted(parts))})" if parts else ""
        facts.append(_fact(
            "connection", f"Connection “{connection.name}” {verb}{detail} {_before(connection.updated_at, failed_at)} "
                          f"this failure, after {since}.",
            _url("audit:list", query=f"object_type={Connection._meta.label_lower}&object_id={connection.pk}"),
            "its audit log"))
    return facts


def _before(moment, failed_at) -> str:
    if failed_at - moment < timedelta(minutes=1):
        return "moments before"
    return f"{timesince(moment, failed_at)} before"


def _changed_parts(action: str, after) -> set[str]:
    if action == "connection.secret_replaced":
        return {"secret replaced"}
    if action == "connection.secret_cleared":
        return {"secret removed"}
    if action == "connection.sharing_changed":
        return {"who may use it"}
    if action == "connection.updated" and isinstance(after, dict):
        return set(after)
    return set()


def _usual_range(failed: StepAttempt, successes, since: str) -> list[Fact]:
    facts = []
    durations = [a.duration_ms for a in successes if a.duration_ms is not None]
    if len(durations) >= MIN_USUAL and failed.duration_ms is not None and failed.duration_ms > max(durations) * SLOWER:
        facts.append(_fact("slow", f"It ran {_seconds(failed.duration_ms)} before failing; its last {len(durations)} "
                                   f"successes took {_seconds(min(durations))}–{_seconds(max(durations))}."))
    read = [a.records_in for a in successes]
    if len(read) >= MIN_USUAL and min(read) > 0 and failed.records_in < min(read) / 2:
        facts.append(_fact("records_low", f"It read {failed.records_in:,} records; its last {len(read)} successes "
                                          f"read {min(read):,}–{max(read):,}."))
    elif len(read) >= MIN_USUAL and max(read) > 0 and failed.records_in > max(read) * 2:
        facts.append(_fact("records_high", f"It read {failed.records_in:,} records, more than twice its usual "
                                           f"{min(read):,}–{max(read):,}."))
    return facts


def _seconds(milliseconds: int) -> str:
    seconds = milliseconds / 1000
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def _upstream(run: Run, step_run: StepRun, recent_runs) -> list[Fact]:
    """The steps it needs, in this run: skipped, failed before succeeding, or much slower than usual."""
    step = run.version.plan.steps.get(step_run.step_id)
    needs = list(step.needs) if step else []
    if not needs:
        return []
    usual: dict[str, list[float]] = {}
    for step_id, started, finished in StepRun.objects.filter(
            run_id__in=recent_runs, step_id__in=needs, state=StepState.SUCCEEDED, started_at__isnull=False,
            finished_at__isnull=False).order_by().values_list("step_id", "started_at", "finished_at"):
        usual.setdefault(step_id, []).append((finished - started).total_seconds())
    facts = []
    for need in StepRun.objects.filter(run_id=run.pk, step_id__in=needs).order_by("position"):
        url = _url("runs:step", run.pk, need.step_id)
        if need.state == StepState.SKIPPED:
            facts.append(_fact("upstream", f"The step it needs, “{need.step_id}”, was skipped "
                                           f"({need.get_skip_reason_display().lower()}).", url, need.step_id))
        elif need.state == StepState.SUCCEEDED and need.attempt > 1:
            facts.append(_fact("upstream", f"The step it needs, “{need.step_id}”, failed before it succeeded "
                                           f"(attempt {need.attempt}).", url, need.step_id))
        elif need.started_at and need.finished_at and len(usual.get(need.step_id, [])) >= MIN_USUAL:
            took, slowest = (need.finished_at - need.started_at).total_seconds(), max(usual[need.step_id])
            if took > slowest * SLOWER and took - slowest > 1:
                facts.append(_fact("upstream", f"The step it needs, “{need.step_id}”, ran late: it took "
                                               f"{took:.0f} s, at most {slowest:.0f} s in its last runs.",
                                   url, need.step_id))
    return facts


def _same_signature(run: Run, failed: StepAttempt, failed_at) -> list[Fact]:
    """The team's other runs that failed with the same error signature within the window."""
    if not failed.error_signature:
        return []
    # Only failed attempts have a signature: no state filter, so the planner takes the signature's index.
    others = (StepAttempt.objects.filter(
        error_signature=failed.error_signature, kind=AttemptKind.STEP,
        ended_at__gte=failed_at - SAME_SIGNATURE_WINDOW, ended_at__lte=failed_at + SAME_SIGNATURE_WINDOW,
        step_run__run__team_id=run.team_id).exclude(step_run__run_id=run.pk)
        .order_by("-ended_at").values_list("step_run__run_id", "step_run__run__workflow__name", "step_run__step_id"))
    rows = list(others[:SAME_SIGNATURE_ROWS])
    seen: dict[int, tuple[str, str]] = {}
    for run_id, workflow, step_id in rows:
        seen.setdefault(run_id, (workflow, step_id))
    if not seen:
        return []
    named = ", ".join(f"#{pk} ({workflow} · {step_id})" for pk, (workflow, step_id) in list(seen.items())[:SHOWN_NAMES])
    more = len(seen) - SHOWN_NAMES
    count = f"{len(seen)}{'+' if len(rows) == SAME_SIGNATURE_ROWS else ''} other run{'s' if len(seen) > 1 else ''}"
    first_run, (_, first_step) = next(iter(seen.items()))
    return [_fact("same_signature", f"{count} of this team failed with the same error within an hour of this "
                                    f"failure: {named}{f' and {more} more' if more > 0 else ''}.",
                  _url("runs:step", first_run, first_step), f"run #{first_run}")]
