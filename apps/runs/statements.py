"""The engine's per-step statements, written as plain SQL.

Every step of every run passes through these (claim, finish, queue the next), and the ORM's
query building cost more than the database round trip itself (about 0.4 ms a query against
0.1-0.2 ms for the statement). Each function says what it does in one statement where the
database allows it: PostgreSQL runs data-modifying CTEs, so two updates that always go together
are sent as one; SQLite (in-process, no round trip) gets the same statements one by one.
Only apps.runs.engine calls these; they do no locking of their own beyond the row they change.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Iterable

from django.db import connection
from django.utils.dateparse import parse_datetime

from apps.accounts.models import Team
from apps.runs.models import AttemptKind, AttemptState, Run, StepAttempt, StepRun, StepState
from apps.sql import typed_placeholders

RUN = Run._meta.db_table
STEP = StepRun._meta.db_table
ATTEMPT = StepAttempt._meta.db_table
TEAM = Team._meta.db_table
RUN_COLUMNS = [field.column for field in Run._meta.concrete_fields]
STEP_COLUMNS = ("id", "run_id", "step_id", "state", "skip_reason", "attempt", "retry_budget_from",
                "params_override", "finished_at")


def _combined() -> bool:
    """Whether two statements can travel as one (PostgreSQL's data-modifying CTEs)."""
    return connection.vendor == "postgresql"


def _json(model, field_name: str, value: Any):
    return model._meta.get_field(field_name).get_db_prep_value(value, connection)


def _when(value: datetime | None):
    return connection.ops.adapt_datetimefield_value(value)


def lock_run(run_id: int) -> Run:
    """The run, its row locked until the transaction ends, with its team's slug (for audit)."""
    return _locked_run(_lock_run_sql(), [run_id], run_id)


def _lock_run_sql(shared: bool = False) -> str:
    # Shared: the run's state cannot change until the transaction ends, but other shared holders
    # (parallel successes) go on at the same time.
    mode = "SHARE" if shared else "UPDATE"
    lock = f" FOR {mode} OF r" if connection.features.has_select_for_update_of else ""
    columns = ", ".join(f"r.{column}" for column in RUN_COLUMNS)
    return (f"SELECT {columns}, t.slug AS team_slug FROM {RUN} r JOIN {TEAM} t ON t.id = r.team_id "
            f"WHERE r.id = %s{lock}")


def _locked_run(sql: str, params: list, run_id: int) -> Run:
    rows = list(Run.objects.raw(sql, params))
    if not rows:
        raise Run.DoesNotExist(f"Run {run_id} does not exist.")
    run = rows[0]
    # The other team fields load on first use; the engine only needs the id and slug.
    Run.team.field.set_cached_value(run, Team.from_db(connection.alias, ["id", "slug"], [run.team_id, run.team_slug]))
    return run


_RUN_FIELDS = [field for field in Run._meta.concrete_fields if not field.primary_key]
_STEP_FIELDS = tuple(field for field in StepRun._meta.concrete_fields if not field.primary_key and field.attname != "run_id")


def insert_run(run: Run, step_runs: list[StepRun]) -> None:
    """Insert a new run and its step runs, and give each its key: in one statement on PostgreSQL
    (a data-modifying CTE), where the ORM's insert and bulk insert took two round trips and
    building them cost more than the database's work."""
    if not _combined() or not step_runs:
        run.save(force_insert=True)
        for step_run in step_runs:
            step_run.run = run
        StepRun.objects.bulk_create(step_runs)
        return
    run_columns = ", ".join(field.column for field in _RUN_FIELDS)
    step_columns = ", ".join(field.column for field in _STEP_FIELDS)
    typed = f"({typed_placeholders(_STEP_FIELDS)})"
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH new_run AS (INSERT INTO {RUN} ({run_columns}) VALUES ({', '.join(['%s'] * len(_RUN_FIELDS))}) "
            f"RETURNING id), new_steps AS (INSERT INTO {STEP} (run_id, {step_columns}) "
            f"SELECT new_run.id, v.* FROM new_run, (VALUES {', '.join([typed] * len(step_runs))}) AS v "
            f"RETURNING id, step_id) SELECT (SELECT id FROM new_run), id, step_id FROM new_steps",
            [field.get_db_prep_save(getattr(run, field.attname), connection) for field in _RUN_FIELDS]
            + [field.get_db_prep_save(getattr(step_run, field.attname), connection)
               for step_run in step_runs for field in _STEP_FIELDS])
        inserted = cursor.fetchall()
    keys = {step_id: pk for _, pk, step_id in inserted}
    run.pk = inserted[0][0]
    run._state.adding, run._state.db = False, connection.alias
    for step_run in step_runs:
        step_run.pk, step_run.run = keys[step_run.step_id], run
        step_run._state.adding, step_run._state.db = False, connection.alias


# On PostgreSQL the claim's commit does not wait for its WAL to reach the disk (when the claim is
# its own transaction, outside any atomic block). Nothing durable depends on it alone: every later commit
# of the attempt (its finish, an effect in the ledger) flushes the WAL up to it first, and a claim
# a database crash took back leaves the attempt queued, so the worker's finish is refused by the
# fencing token and the sweeper re-sends it, as when Redis loses a message. One fsync less per
# attempt delivered by the broker; exclusivity comes from the row lock, which this does not change.
_NO_FLUSH_WAIT = ", set_config('synchronous_commit', 'off', true)"
_CLAIMED_COLUMNS = 12  # what the claim returns, before set_config's own column


def claim(attempt_id: int, worker: str, now: datetime) -> tuple | None:
    """Compare-and-swap a queued attempt to running for `worker` and mark its step run running;
    returns (step_run_id, kind, number, step_type, params, idempotency_key, timeout_seconds,
    queue, deliveries, run_id, step_id, version_id), or None when it was not queued; `deliveries` is the
    claim's fencing token."""
    started = _when(now)
    # The run and step ids come back in the same statement (subqueries in RETURNING work on both).
    claim_sql = (f"UPDATE {ATTEMPT} SET state = %s, started_at = %s, heartbeat_at = %s, worker = %s, "
                 f"deliveries = deliveries + 1 WHERE id = %s AND state = %s "
                 f"RETURNING step_run_id, kind, number, step_type, params, idempotency_key, timeout_seconds, queue, "
                 f"deliveries, (SELECT s.run_id FROM {STEP} s WHERE s.id = {ATTEMPT}.step_run_id), "
                 f"(SELECT s.step_id FROM {STEP} s WHERE s.id = {ATTEMPT}.step_run_id), "
                 f"(SELECT r.version_id FROM {STEP} s JOIN {RUN} r ON r.id = s.run_id "
                 f"WHERE s.id = {ATTEMPT}.step_run_id)")
    claim_params = [AttemptState.RUNNING, started, started, worker, attempt_id, AttemptState.QUEUED]
    mark_sql = (f"UPDATE {STEP} SET state = %s, started_at = COALESCE(started_at, %s) "
                f"WHERE state = %s AND id = {{step_run_id}}")
    mark_params = [StepState.RUNNING, started, StepState.QUEUED]
    with connection.cursor() as cursor:
        if _combined():
            marked = mark_sql.format(step_run_id="(SELECT step_run_id FROM claimed WHERE kind = %s)")
            no_wait = "" if connection.in_atomic_block else _NO_FLUSH_WAIT
            cursor.execute(f"WITH claimed AS ({claim_sql}), marked AS ({marked}) SELECT claimed.*{no_wait} FROM claimed",
                           claim_params + mark_params + [AttemptKind.STEP])
            found = cursor.fetchone()
            if found is not None:
                found = found[:_CLAIMED_COLUMNS]
        else:
            cursor.execute(claim_sql, claim_params)
            found = cursor.fetchone()
            if found is not None and found[1] == AttemptKind.STEP:
                cursor.execute(mark_sql.format(step_run_id="%s"), mark_params + [found[0]])
    if found is None:
        return None
    params = StepAttempt._meta.get_field("params").from_db_value(found[4], None, connection)
    return (*found[:4], params, *found[5:])


def lock_run_and_end_attempt(run_id: int, attempt_id: int, worker: str, claim: int, now: datetime, *, failed: bool,
                             output: Any, output_artifact: str, error_type: str, error_message: str,
                             error_signature: str, duration_ms: int | None, records: tuple[int, int, int],
                             log_lines_dropped: int, succeeded_step_run_id: int | None = None,
                             error_reason: str = "", error_detail: dict | None = None,
                             steps: tuple[str, ...] = (), shared: bool = False) -> tuple[Run, bool, dict[str, StepRun]]:
    """Lock the run (as `lock_run`, or `shared`), then end a running attempt that `worker` still
    holds under `claim` (its delivery count at the claim: the fencing token); with
    `succeeded_step_run_id`, also mark that step run succeeded with the attempt's output. Returns
    the run, whether the attempt was still ours, and the step runs of `steps` as `load_steps`
    reads them (in the same statement on PostgreSQL: a finishing step's successors)."""
    end_sql = (f"UPDATE {ATTEMPT} SET state = %s, ended_at = %s, output = %s, output_artifact = %s, "
               f"error_type = %s, error_message = %s, error_signature = %s, error_reason = %s, error_detail = %s, "
               f"duration_ms = %s, records_in = %s, "
               f"records_out = %s, records_rejected = %s, log_lines_dropped = %s "
               f"WHERE id = %s AND state = %s AND worker = %s AND deliveries = %s")
    ended = _when(now)
    end_params = [AttemptState.FAILED if failed else AttemptState.SUCCEEDED, ended,
                  _json(StepAttempt, "output", None if failed else output), output_artifact, error_type,
                  error_message, error_signature, error_reason, _json(StepAttempt, "error_detail", error_detail),
                  duration_ms, *records, log_lines_dropped, attempt_id, AttemptState.RUNNING, worker, claim]
    succeed_sql = (f"UPDATE {STEP} SET state = %s, output = %s, finished_at = %s, error_type = '', "
                   f"error_message = '' WHERE id = %s")
    succeed_params = [StepState.SUCCEEDED, _json(StepRun, "output", output), ended, succeeded_step_run_id]
    if _combined():
        # The attempt's update waits on the run's lock (it reads `locked`), so the lock order is
        # the same as everywhere else: run first.
        succeed = (f", succeeded AS ({succeed_sql} AND EXISTS (SELECT 1 FROM ended))"
                   if succeeded_step_run_id is not None else "")
        # From the statement's snapshot, which may be older than the run's lock it waited for: safe,
        # as a step's dependents change only once it settled (this finish) or when the run stops
        # advancing (cancelled, failed), which the locked run row, read as it is now, shows.
        rows = (f", (SELECT json_agg(json_build_array({', '.join(STEP_COLUMNS)})) FROM {STEP} "
                f"WHERE run_id = %s AND step_id IN ({', '.join(['%s'] * len(steps))})) AS step_rows" if steps else "")
        run = _locked_run(
            f"WITH locked AS ({_lock_run_sql(shared)}), ended AS ({end_sql} AND EXISTS (SELECT 1 FROM locked) "
            f"RETURNING id){succeed} SELECT locked.*, (SELECT count(*) FROM ended) AS ended_count{rows} FROM locked",
            [run_id] + end_params + (succeed_params if succeeded_step_run_id is not None else [])
            + ([run_id, *steps] if steps else []), run_id)
        return run, bool(run.ended_count), _step_runs_from_json(run.step_rows) if steps else {}
    run = _locked_run(_lock_run_sql(shared), [run_id], run_id)
    with connection.cursor() as cursor:
        cursor.execute(end_sql, end_params)
        if not cursor.rowcount:
            return run, False, {}
        if succeeded_step_run_id is not None:
            cursor.execute(succeed_sql, succeed_params)
    return run, True, load_steps(run_id, steps)


def _step_runs_from_json(found) -> dict[str, StepRun]:
    rows = {}
    for values in (json.loads(found) if isinstance(found, str) else found) or ():
        finished_at = values[-1] and parse_datetime(values[-1])
        row = StepRun.from_db(connection.alias, STEP_COLUMNS, [*values[:-1], finished_at])
        rows[row.step_id] = row
    return rows


def any_step_open(run_id: int, position_spans: Iterable[tuple[int, int]], settled_states: Iterable[str]) -> bool:
    """Whether a step of the run at one of the positions (inclusive spans) is in none of
    `settled_states`: the fan-in's question at each of its needs' ends."""
    spans = list(position_spans)
    settled = list(settled_states)
    where = " OR ".join(["position BETWEEN %s AND %s"] * len(spans))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {STEP} WHERE run_id = %s AND ({where}) "
                       f"AND state NOT IN ({', '.join(['%s'] * len(settled))}) LIMIT 1",
                       [run_id, *(bound for span in spans for bound in span), *settled])
        return cursor.fetchone() is not None


def load_steps(run_id: int, step_ids: Iterable[str]) -> dict[str, StepRun]:
    """The step runs of `step_ids` (the columns the engine decides with; the rest load on use)."""
    step_ids = list(step_ids)
    if not step_ids:
        return {}
    marks = ", ".join(["%s"] * len(step_ids))
    rows = StepRun.objects.raw(f"SELECT {', '.join(STEP_COLUMNS)} FROM {STEP} WHERE run_id = %s "
                               f"AND step_id IN ({marks})", [run_id, *step_ids])
    return {row.step_id: row for row in rows}


def lock_steps(run_id: int, step_ids: Iterable[str]) -> dict[str, StepRun]:
    """The step runs of `step_ids` as `load_steps` reads them, their rows locked (in the order of
    their ids, so two callers cannot deadlock) and read as they are once the lock is granted."""
    step_ids = list(step_ids)
    lock = " FOR NO KEY UPDATE" if connection.vendor == "postgresql" else ""
    rows = StepRun.objects.raw(f"SELECT {', '.join(STEP_COLUMNS)} FROM {STEP} WHERE run_id = %s "
                               f"AND step_id IN ({', '.join(['%s'] * len(step_ids))}) ORDER BY id{lock}",
                               [run_id, *step_ids])
    return {row.step_id: row for row in rows}


def new_attempt(step_run_id: int, *, run_id: int, step_id: str, kind: str, number: int, step_type: str,
                queue: str, params: dict, timeout: int, now: datetime, not_before: datetime,
                claimed_by: str = "") -> StepAttempt:
    """A new attempt, not yet saved (`insert_attempts` writes it): queued, or `claimed_by` a
    worker, already running there."""
    suffix = f"{number}" if kind == AttemptKind.STEP else f"compensate:{number}"
    return StepAttempt(
        step_run_id=step_run_id, kind=kind, number=number, idempotency_key=f"{run_id}:{step_id}:{suffix}",
        step_type=step_type, queue=queue, params=params, timeout_seconds=timeout, queued_at=now,
        not_before=not_before, state=AttemptState.RUNNING if claimed_by else AttemptState.QUEUED,
        worker=claimed_by, deliveries=1 if claimed_by else 0, started_at=now if claimed_by else None,
        heartbeat_at=now if claimed_by else None,
    )


_ATTEMPT_COLUMNS = ("step_run_id", "kind", "number", "idempotency_key", "step_type", "queue", "params",
                    "timeout_seconds", "state", "queued_at", "not_before", "deliveries", "worker", "started_at",
                    "heartbeat_at", "output_artifact", "error_type", "error_message", "error_signature", "records_in",
                    "records_out", "records_rejected", "log_lines_dropped")
# Keeps a wide fan-out's attempts under SQLite's limit of bound parameters per statement.
_ATTEMPTS_PER_INSERT = 500


def insert_attempts(attempts: list[StepAttempt]) -> None:
    """Insert new attempts (from `new_attempt`, all queued or all claimed alike) in one statement,
    and mark the step runs of the step attempts queued (or running) at their numbers: a fan-out's
    successors cost one round trip, not one each."""
    now = _when(attempts[0].queued_at)
    if attempts[0].worker:
        mark_sql = f"UPDATE {STEP} SET attempt = {{number}}, state = %s, started_at = COALESCE(started_at, %s) {{where}}"
        mark_params = [StepState.RUNNING, now]
    else:
        mark_sql = f"UPDATE {STEP} SET attempt = {{number}}, state = %s {{where}}"
        mark_params = [StepState.QUEUED]
    with connection.cursor() as cursor:
        for first in range(0, len(attempts), _ATTEMPTS_PER_INSERT):
            chunk = attempts[first:first + _ATTEMPTS_PER_INSERT]
            values = [value for attempt in chunk for value in (
                attempt.step_run_id, attempt.kind, attempt.number, attempt.idempotency_key, attempt.step_type,
                attempt.queue, _json(StepAttempt, "params", attempt.params), attempt.timeout_seconds, attempt.state,
                _when(attempt.queued_at), _when(attempt.not_before), attempt.deliveries, attempt.worker,
                _when(attempt.started_at), _when(attempt.heartbeat_at), "", "", "", "", 0, 0, 0, 0)]
            row = f"({', '.join(['%s'] * len(_ATTEMPT_COLUMNS))})"
            insert_sql = (f"INSERT INTO {ATTEMPT} ({', '.join(_ATTEMPT_COLUMNS)}) VALUES {', '.join([row] * len(chunk))} "
                          f"RETURNING id")
            marked = [attempt for attempt in chunk if attempt.kind == AttemptKind.STEP]
            if marked and _combined():
                numbers = ", ".join(["(%s::bigint, %s::integer)"] * len(marked))
                mark = mark_sql.format(number="v.number",
                                       where=f"FROM (VALUES {numbers}) AS v(id, number) WHERE {STEP}.id = v.id")
                cursor.execute(f"WITH marked AS ({mark}) {insert_sql}",
                               mark_params + [value for attempt in marked for value in
                                              (attempt.step_run_id, attempt.number)] + values)
            else:
                if marked:
                    cursor.executemany(mark_sql.format(number="%s", where="WHERE id = %s"),
                                       [[attempt.number, *mark_params, attempt.step_run_id] for attempt in marked])
                cursor.execute(insert_sql, values)
            # Rows come back in the order they were inserted (Django's bulk_create relies on it too).
            for attempt, (pk,) in zip(chunk, cursor.fetchall()):
                attempt.pk = pk
                attempt._state.adding = False
