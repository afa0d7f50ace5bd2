"""Page latency benchmark: the pages people open most stay fast with a long history.

PostgreSQL database fd_bench_pages (on the server of DATABASE_URL, else 127.0.0.1:5432) holds
100,000 runs, 1,000,000 step runs and as many step attempts, written with COPY once and kept
between runs of the benchmark (BENCH_PAGES_REBUILD=1 rebuilds it). BENCH_PAGES_RUNS sets the size:
1000000 gives 10M step runs in fd_bench_pages_10m (written in rounds of CHUNK_RUNS runs, so memory
stays small); BENCH_PAGES_DB names another database, and BENCH_PAGES_RUNS and BENCH_PAGES_INCIDENTS
small try the generation quickly. A real server (gunicorn,
BENCH_SERVER_WORKERS sync processes) serves the console; BENCH_CLIENTS threads (default 20) with
httpx open the runs list, a run's page, the approval inbox, home (and its failure groups), the workflows list, a
workflow's page and the team dashboard (whose run history reads the same runs), each client
pausing BENCH_THINK_SECONDS between pages as a person does. Reported per page and person: p50, p95,
p99 and max latency seen by the client, and p95 inside the server (gunicorn's request time,
which leaves out waiting for a free worker), first for one client alone (the pages' service
time), then for all clients at once; the goal is p95 under 150 ms.

It also holds BENCH_PAGES_INCIDENTS (default 100,000) resolved incidents, their wordings drawn
from fixtures/incidents/demo_history.jsonl (one wording per row and SYSTEMS name, so some 4,000 texts are
embedded), indexed in var/fd_bench_pages-knowledge (its own knowledge index), and an open incident
for each paused run's failure; those the timed pages show are ranked once as the worker does when a
failure is recorded (ranking all 10,000 of the 10M history would take 40 minutes): the
checkpoint's suggestions and the incident page are timed with suggestions, the server's workers
having loaded the model and the index at start (the benchmark waits for each to say so). A history
built before the incidents existed gets them added, its runs kept. The load generator shares
the machine with the server and PostgreSQL: it reports its own CPU use, and the machine's load
average is printed before and after, so run it on an otherwise idle machine.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
RUNS = int(os.environ.get("BENCH_PAGES_RUNS", "100000"))
STEPS_PER_RUN = 10
# Each size of history has its own database, kept between runs: BENCH_PAGES_RUNS=1000000 (10M step
# runs) builds and reuses fd_bench_pages_10m beside the default's fd_bench_pages.
DB_NAME = os.environ.get("BENCH_PAGES_DB") or ("fd_bench_pages" if RUNS == 100_000 else
                                               f"fd_bench_pages_{RUNS * STEPS_PER_RUN // 1_000_000}m"
                                               if RUNS * STEPS_PER_RUN % 1_000_000 == 0 else f"fd_bench_pages_{RUNS}")
TEAMS = 10
WORKFLOWS_PER_TEAM = 20
GOAL_P95_MS = 150
# BENCH_PAGES_ONLY="home,inbox" times only those pages (names as in the table), to check one fix.
ONLY = {name.strip() for name in os.environ.get("BENCH_PAGES_ONLY", "").split(",") if name.strip()}
INCIDENTS = int(os.environ.get("BENCH_PAGES_INCIDENTS", "100000"))
# Wordings of each past failure: its title and text with one of these systems named.
SYSTEMS = ["orders", "billing", "ledger", "payments", "crm", "inventory", "events", "analytics", "partners",
           "shipping", "reports", "identity"]
INCIDENT_POOL = ROOT / "fixtures" / "incidents" / "demo_history.jsonl"
KNOWLEDGE_DIR = VAR / f"{DB_NAME}-knowledge"
WARM_UP_SECONDS = 600  # the server workers' model and index load, all at once on a small machine
PORT = int(os.environ.get("BENCH_PAGES_PORT", "8765"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "20"))
REQUESTS_PER_PAGE = int(os.environ.get("BENCH_REQUESTS_PER_PAGE", "200"))
THINK_SECONDS = float(os.environ.get("BENCH_THINK_SECONDS", "1.0"))
SERVER_WORKERS = int(os.environ.get("BENCH_SERVER_WORKERS", str(max(2, (os.cpu_count() or 2) * 2))))
PASSWORD = "bench-pages"
# Who opens the pages: an operator and approver of two teams, and a platform admin who sees all ten.
BENCH_USERS = ("bench-operator", "bench-admin")
ACCESS_LOG = VAR / "bench-pages-access.log"
# Run states of the generated history, by share: mostly finished, some needing people.
STATE_SHARES = [("succeeded", 0.88), ("failed", 0.06), ("paused", 0.01), ("waiting", 0.02), ("running", 0.03)]


def database_url() -> str:
    configured = os.environ.get("DATABASE_URL", "")
    base = configured if configured.startswith(("postgres://", "postgresql://")) \
        else "postgres://postgres@127.0.0.1:5432/postgres"
    parts = urlsplit(base)
    import psycopg

    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        if os.environ.get("BENCH_PAGES_REBUILD") == "1":
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone():
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    return urlunsplit(parts._replace(path=f"/{DB_NAME}"))


def setup_django() -> None:
    os.environ["DATABASE_URL"] = database_url()
    # The benchmark's index is its own (the server inherits this): the console's stays untouched.
    os.environ["FLOWDECK_KNOWLEDGE_DIR"] = str(KNOWLEDGE_DIR)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


# --- History ------------------------------------------------------------------------------------

def _spec_source(name: str, group: str) -> str:
    steps = ["steps:"]
    for number in range(STEPS_PER_RUN):
        steps += [f"  - id: s{number}", "    type: echo", f"    with: {{message: step {number}}}"]
        if number:
            steps.append(f"    needs: s{number - 1}")
        if number == 5:
            steps.append(f"    approval: {group}")
    return f"name: {name}\ndescription: Bench workflow {name}.\n" + "\n".join(steps) + "\n"


def _people():
    from apps.accounts.models import ApproverGroup, Membership, Team, User

    teams = [Team.objects.create(slug=f"team-{n}", name=f"Team {n}") for n in range(TEAMS)]
    operator = User.objects.create_user("bench-operator", password=PASSWORD)
    User.objects.create_user("bench-admin", password=PASSWORD, is_platform_admin=True)
    groups = []
    for team in teams:
        group = ApproverGroup.objects.create(slug=f"{team.slug}-approvers", name=f"{team.name} approvers", team=team)
        approver = User.objects.create_user(f"bench-approver-{team.slug}", password=PASSWORD)
        Membership.objects.create(user=approver, team=team, role="approver")
        group.members.add(approver)
        groups.append(group)
    for team, group in zip(teams[:2], groups[:2]):
        for role in ("author", "operator", "approver"):
            Membership.objects.create(user=operator, team=team, role=role)
        group.members.add(operator)
    return teams, groups


def _copy(cursor, table: str, columns: list[str], rows) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# Runs written per COPY round: 10M step runs and their attempts would take some 12 GB as tuples.
CHUNK_RUNS = 20_000
RUN_COLUMNS = ["id", "workflow_id", "version_id", "team_id", "state", "inputs", "trigger", "trigger_detail",
               "failure_summary", "created_at", "started_at", "finished_at"]
STEP_RUN_COLUMNS = ["id", "run_id", "step_id", "position", "step_type", "state", "skip_reason", "attempt",
                    "retry_budget_from", "error_type", "error_message", "started_at", "finished_at", "decision"]
ATTEMPT_COLUMNS = ["id", "step_run_id", "kind", "number", "idempotency_key", "step_type", "queue", "params",
                   "timeout_seconds", "state", "queued_at", "not_before", "deliveries", "worker", "output_artifact",
                   "error_type", "error_message", "error_signature", "records_in", "records_out", "records_rejected",
                   "log_lines_dropped", "started_at", "ended_at", "duration_ms"]
REQUEST_COLUMNS = ["kind", "state", "team_id", "run_id", "step_run_id", "group_id", "quorum", "on_expiry", "risky",
                   "error_type", "error_message", "error_signature", "outcome", "created_at", "stage", "params_digest"]
SLA_COLUMNS = ["run_id", "team_id", "state", "deadline", "waiting_for_people_seconds", "running_seconds",
               "predicted_wait_seconds", "evaluated_at"]


@dataclass
class HistoryChunk:
    """The rows of CHUNK_RUNS runs, as COPY writes them."""

    runs: list = field(default_factory=list)
    step_runs: list = field(default_factory=list)
    attempts: list = field(default_factory=list)
    requests: list = field(default_factory=list)
    slas: list = field(default_factory=list)

    def copy(self, cursor) -> None:
        _copy(cursor, "runs_run", RUN_COLUMNS, self.runs)
        _copy(cursor, "runs_steprun", STEP_RUN_COLUMNS, self.step_runs)
        _copy(cursor, "runs_stepattempt", ATTEMPT_COLUMNS, self.attempts)
        _copy(cursor, "approvals_approvalrequest", REQUEST_COLUMNS, self.requests)
        _copy(cursor, "monitoring_slastatus", SLA_COLUMNS, self.slas)


def generate() -> None:
    from django.db import connection, transaction

    from apps.workflows.services import save_version

    rng = random.Random(7)
    started = time.monotonic()
    with transaction.atomic():
        teams, groups = _people()
        versions = [save_version(None, team=team, source=_spec_source(f"flow-{team.slug}-{n}", group.slug))
                    for team, group in zip(teams, groups) for n in range(WORKFLOWS_PER_TEAM)]
    now = datetime.now(timezone.utc)
    states = [state for state, share in STATE_SHARES for _ in range(int(share * 100))]
    chunk, totals = HistoryChunk(), {"runs": 0, "step runs": 0, "attempts": 0, "open gates": 0}
    step_run_id = attempt_id = 0
    with connection.cursor() as django_cursor:
        cursor = django_cursor.cursor
        for run_id in range(1, RUNS + 1):
            version = versions[rng.randrange(len(versions))]
            state = states[rng.randrange(len(states))]
            # Newer runs are denser, as in a console that grew; the unfinished ones are recent.
            age = timedelta(seconds=int(365 * 86400 * rng.random() ** 2)) if state in ("succeeded", "failed") \
                else timedelta(seconds=rng.randrange(3600))
            created = now - age
            finished = created + timedelta(seconds=rng.randrange(30, 900)) if state in ("succeeded", "failed") \
                else None
            failed_at = rng.randrange(STEPS_PER_RUN) if state in ("failed", "paused") else None
            chunk.runs.append((run_id, version.workflow_id, version.pk, version.workflow.team_id, state, "{}",
                               "schedule", "{}",
                               f"step s{failed_at} failed: ConnectionError to ledger-db" if failed_at is not None
                               else "", created, created, finished))
            for position in range(STEPS_PER_RUN):
                step_run_id += 1
                if state == "succeeded" or (failed_at is not None and position < failed_at) \
                        or (state in ("waiting", "running") and position < 5):
                    step_state = "succeeded"
                elif failed_at == position:
                    step_state = "failed"
                elif state == "waiting" and position == 5:
                    step_state = "waiting_approval"
                elif state == "running" and position == 5:
                    step_state = "running"
                else:
                    step_state = "pending"
                ran = step_state in ("succeeded", "failed", "running")
                begin = created + timedelta(seconds=position * 3)
                end = begin + timedelta(seconds=2) if step_state in ("succeeded", "failed") else None
                error = "ConnectionError" if step_state == "failed" else ""
                chunk.step_runs.append((step_run_id, run_id, f"s{position}", position, "echo", step_state, "",
                                        1 if ran else 0, 1, error, "connection refused" if error else "",
                                        begin if ran else None, end, ""))
                if ran:
                    attempt_id += 1
                    chunk.attempts.append((
                        attempt_id, step_run_id, "step", 1, f"{run_id}:s{position}:1", "echo", "steps", "{}", 300,
                        "failed" if error else "succeeded" if end else "running", begin, begin, 1, "bench@host:1",
                        "", error, "connection refused" if error else "",
                        "ConnectionError: connection refused" if error else "", 0, 0, 0, 0, begin, end,
                        rng.randrange(500, 4000) if end else None))
                if step_state == "waiting_approval":
                    chunk.requests.append(("gate", "pending", version.workflow.team_id, run_id, step_run_id,
                                           groups[teams.index(version.workflow.team)].pk, 1, "reject", True, "",
                                           "", "", "", created + timedelta(seconds=15), 0, ""))
                if step_state == "failed" and state == "paused":
                    chunk.requests.append(("checkpoint", "pending", version.workflow.team_id, run_id, step_run_id,
                                           None, 1, "reject", False, "ConnectionError", "connection refused",
                                           "ConnectionError: connection refused", "", end, 0, ""))
            if state == "running" and rng.random() < 0.3:
                chunk.slas.append((run_id, version.workflow.team_id, "at_risk", created + timedelta(hours=1), 0, 60,
                                   0, now))
            if run_id % CHUNK_RUNS == 0 or run_id == RUNS:
                chunk.copy(cursor)
                for name, rows in (("runs", chunk.runs), ("step runs", chunk.step_runs),
                                   ("attempts", chunk.attempts), ("open gates", chunk.requests)):
                    totals[name] += len(rows)
                chunk = HistoryChunk()
                if RUNS > 10 * CHUNK_RUNS and run_id % (10 * CHUNK_RUNS) == 0:
                    print(f"  {run_id:,} runs written in {time.monotonic() - started:.0f} s", flush=True)
        for table in ("runs_run", "runs_steprun", "runs_stepattempt"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    with connection.cursor() as cursor:
        # As autovacuum would have by the time a console has this history: index-only scans
        # (the unfinished runs for home's SLA panel) need the visibility map.
        cursor.execute("VACUUM ANALYZE")
    print(f"generated {totals['runs']:,} runs, {totals['step runs']:,} step runs, {totals['attempts']:,} attempts, "
          f"{totals['open gates']:,} open gates in {time.monotonic() - started:.0f} s", flush=True)


def ensure_history() -> None:
    from apps.runs.models import Run

    if Run.objects.count() >= RUNS:
        print(f"reusing the history in {DB_NAME} (BENCH_PAGES_REBUILD=1 rebuilds it)", flush=True)
    elif Run.objects.exists():
        raise SystemExit(f"{DB_NAME} holds a partial history: run with BENCH_PAGES_REBUILD=1")
    else:
        generate()
    ensure_incidents()


# --- Incidents and their suggestions --------------------------------------------------------------

def _pool() -> list[dict]:
    """(title, text, category, root cause, resolution) of each past failure, by its known category."""
    import json

    from apps.incidents.models import RootCauseCategory
    from apps.incidents.taxonomy import canonical_slug

    categories = dict(RootCauseCategory.objects.values_list("slug", "pk"))
    pool = []
    for line in INCIDENT_POOL.read_text().splitlines():
        row = json.loads(line)
        slug = canonical_slug(row["root_cause_category"])
        if slug in categories:
            pool.append({"title": row["title"], "text": row["text"], "category_id": categories[slug],
                         "root_cause": row.get("root_cause", ""), "resolution": row.get("resolution", "")})
    return pool


def _worded(row: dict, system: str) -> tuple[str, str]:
    return f"{row['title']} ({system})", f"{row['text']}\nSystem: {system}."


def generate_incidents(count: int) -> None:
    """`count` resolved incidents spread over the teams and the past year, and an open one for
    each paused run's failed step (with its occurrence, as a failure records it)."""
    from django.db import connection

    from apps.accounts.models import Team
    from apps.runs.models import StepRun
    from apps.runs.signatures import error_signature

    rng = random.Random(11)
    started = time.monotonic()
    pool = _pool()
    team_ids = sorted(Team.objects.values_list("pk", flat=True)) or [None]
    now = datetime.now(timezone.utc)
    incidents, occurrences = [], []
    for number in range(count):
        row = pool[number % len(pool)]
        title, text = _worded(row, SYSTEMS[(number // len(pool)) % len(SYSTEMS)])
        occurred = now - timedelta(seconds=int(365 * 86400 * rng.random()))
        incidents.append((team_ids[number % len(team_ids)], None, None, title, text, "resolved", "run_failure", "", "",
                          "{}", "", text.splitlines()[0][:500], "", "", "{}", "", 1, row["category_id"],
                          row["root_cause"], row["resolution"], occurred + timedelta(hours=2), occurred, occurred,
                          "", occurred))
    failed = (StepRun.objects.filter(state="failed", approval_requests__kind="checkpoint",
                                     approval_requests__state="pending")
              .select_related("run__workflow").order_by("pk").distinct())
    next_id = count
    for step_run in failed.iterator():
        row = pool[rng.randrange(len(pool))]
        title, text = _worded(row, SYSTEMS[rng.randrange(len(SYSTEMS))])
        next_id += 1
        message = text.splitlines()[0][:500]
        incidents.append((step_run.run.team_id, step_run.run.workflow_id, step_run.run_id,
                          f"{step_run.run.workflow.name} · {step_run.step_id}: {title}", text,
                          "open", "run_failure", step_run.step_id, step_run.step_type, "{}", "StepError", message,
                          error_signature("StepError", message), "", "{}", "", 1, None, "", "", None,
                          step_run.finished_at or now, step_run.finished_at or now, "", step_run.finished_at or now))
        occurrences.append((next_id, step_run.run_id, step_run.pk, message, step_run.finished_at or now))
    columns = ["team_id", "workflow_id", "run_id", "title", "description", "status", "source", "step_id", "step_type", "inputs",
               "error_type", "error_message", "error_signature", "error_reason", "error_detail", "log_tail",
               "occurrences", "root_cause_category_id", "root_cause_description", "resolution", "resolved_at",
               "occurred_at", "last_seen_at", "source_url", "created_at"]
    with connection.cursor() as django_cursor:
        cursor = django_cursor.cursor
        # Ids in order: the open incidents follow the resolved ones, so occurrences can name them.
        _copy(cursor, "incidents_incident", ["id", *columns],
              ((number + 1, *values) for number, values in enumerate(incidents)))
        cursor.execute("SELECT setval(pg_get_serial_sequence('incidents_incident', 'id'), "
                       "(SELECT max(id) FROM incidents_incident))")
        _copy(cursor, "incidents_incidentoccurrence", ["incident_id", "run_id", "step_run_id", "error_message",
                                                       "occurred_at"], occurrences)
        cursor.execute("ANALYZE incidents_incident; ANALYZE incidents_incidentoccurrence")
    print(f"generated {count:,} resolved incidents ({len({_worded(r, s) for r in pool for s in SYSTEMS}):,} "
          f"wordings) and {len(occurrences):,} open ones at checkpoints in {time.monotonic() - started:.0f} s",
          flush=True)


def ensure_incidents(count: int = INCIDENTS) -> None:
    """The incidents (added to a history built without them), their index, and the open ones' rankings."""
    from apps.incidents.models import Incident
    from apps.knowledge.incident_ranking import ranking_for
    from apps.knowledge.indexing import build_index, reader
    from apps.knowledge.runbooks import sync_runbooks

    resolved = Incident.objects.filter(status="resolved").count()
    if not resolved:
        generate_incidents(count)
    elif resolved != count:
        raise SystemExit(f"{DB_NAME} holds {resolved:,} resolved incidents, not {count:,}: run with "
                         f"BENCH_PAGES_REBUILD=1 (or set BENCH_PAGES_INCIDENTS={resolved})")
    index = reader().get()
    if len(index.positions_by_kind.get("incident", [])) != count:
        began = time.monotonic()
        sync_runbooks()
        build = build_index()
        index = reader().get()
        print(f"indexed {build.documents:,} documents ({build.embedded:,} texts embedded, the rest cached) in "
              f"{time.monotonic() - began:.0f} s", flush=True)
    # The ones the timed pages show: ranking all 10,000 of the 10M history would take 40 minutes.
    shown = set()
    for username in BENCH_USERS:
        shown |= set(open_work(username).ranked_incidents)
    began, ranked = time.monotonic(), 0
    for incident in Incident.objects.filter(pk__in=shown).order_by("pk").iterator():
        ranked += ranking_for(incident, compute=True) is not None
    print(f"{ranked:,} of {Incident.objects.filter(status='open').count():,} open incidents ranked (those the "
          f"pages show; or their stored ranking current) in {time.monotonic() - began:.0f} s", flush=True)


# --- Server and load ------------------------------------------------------------------------------

def start_server() -> subprocess.Popen:
    log = VAR / "bench-pages-server.log"
    ACCESS_LOG.write_text("")
    gunicorn = Path(sys.executable).parent / "gunicorn"
    # The access log holds each request's path and its time inside the server, in microseconds.
    command = [str(gunicorn), "apps.wsgi", "-b", f"127.0.0.1:{PORT}", "-w", str(SERVER_WORKERS),
               "--access-logfile", str(ACCESS_LOG), "--access-logformat", "%(U)s|%(q)s|%(s)s|%(D)s"]
    env = {**os.environ, "DEBUG": "0", "DB_CONN_MAX_AGE": "600"}
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{PORT}/accounts/login/", timeout=2)
            print(f"server: gunicorn, {SERVER_WORKERS} sync workers", flush=True)
            _wait_for_warm_up(log, server)
            return server
        except httpx.HTTPError:
            if server.poll() is not None:
                break
            time.sleep(0.3)
    raise SystemExit(f"the server did not start:\n{log.read_text()}")


def _wait_for_warm_up(log: Path, server: subprocess.Popen) -> None:
    """Until every worker logged that it loaded the model and the index (gunicorn.conf.py)."""
    import re

    began = time.monotonic()
    while time.monotonic() - began < WARM_UP_SECONDS and server.poll() is None:
        seconds = [float(s) for s in re.findall(r"knowledge warm-up done in ([0-9.]+) s", log.read_text())]
        if len(seconds) >= SERVER_WORKERS:
            print(f"server workers warmed up (model and index loaded) in {', '.join(f'{s:.1f}' for s in seconds)} "
                  f"s each, {time.monotonic() - began:.0f} s after the server answered", flush=True)
            return
        time.sleep(1)
    print(f"warning: not every server worker warmed up within {WARM_UP_SECONDS} s; suggestions may be "
          f"computed by no one (no Celery worker runs here)", flush=True)


def session_cookie(username: str) -> str:
    from django.test import Client

    from apps.accounts.models import User

    client = Client()
    client.force_login(User.objects.get(username=username))
    return client.cookies["sessionid"].value


@dataclass
class OpenWork:
    """What of the open work the benchmark opens for one person (newest first)."""

    checkpoints: list[int]  # approval request ids
    gates: list[int]
    incidents: list[int]
    ranked_incidents: list[int]  # the incidents whose ranking a timed page shows (the inbox's first page too)


def open_work(username: str) -> OpenWork:
    from apps.accounts.access import scope_to_user
    from apps.accounts.models import User
    from apps.approvals.models import ApprovalRequest
    from apps.approvals.services import inbox_for
    from apps.incidents.models import Incident, IncidentOccurrence

    user = User.objects.get(username=username)
    requests = scope_to_user(ApprovalRequest.objects.filter(state="pending").order_by("-pk"), user)
    checkpoints = list(requests.filter(kind="checkpoint").values_list("pk", flat=True)[:200])
    incidents = list(scope_to_user(Incident.objects.filter(status="open").order_by("-pk"), user)
                     .values_list("pk", flat=True)[:200])
    step_runs = set(ApprovalRequest.objects.filter(pk__in=checkpoints).values_list("step_run_id", flat=True)) \
        | set(inbox_for(user).filter(kind="checkpoint").values_list("step_run_id", flat=True)[:25])
    ranked = set(incidents) | set(IncidentOccurrence.objects.filter(step_run_id__in=step_runs)
                                  .values_list("incident_id", flat=True))
    return OpenWork(checkpoints, list(requests.filter(kind="gate").values_list("pk", flat=True)[:200]), incidents,
                    sorted(ranked))


def page_paths(username: str) -> dict[str, list[str]]:
    from apps.accounts.access import scope_to_user
    from apps.accounts.models import User
    from apps.runs.models import Run
    from apps.workflows.models import Workflow

    user = User.objects.get(username=username)
    run_ids = list(scope_to_user(Run.objects.order_by("-pk"), user).values_list("pk", flat=True)[:2000])
    workflow_ids = list(scope_to_user(Workflow.objects.order_by("pk"), user).values_list("pk", flat=True)[:40])
    work = open_work(username)
    paths = {"runs list": ["/runs/", "/runs/?page=2", "/runs/?state=failed"],
            "run detail": [f"/runs/{pk}/" for pk in run_ids],
            "inbox": ["/approvals/"], "home": ["/"],
            # Home's failure groups, a fragment the page loads once it shows (every waiting checkpoint).
            "home failing": ["/home/failing/"],
            # Run history: each workflow's last runs, rates and percentiles, the charts' grouped queries.
            "workflows list": ["/workflows/", "/workflows/?page=2"],
            "workflow detail": [f"/workflows/{pk}/" for pk in workflow_ids],
            "team dashboard": ["/runs/dashboard/"],
            # The decision pages: the summary, the rendered parameters, the diff; suggestions load apart.
            "gate": [f"/approvals/{pk}/" for pk in work.gates],
            "checkpoint": [f"/approvals/{pk}/" for pk in work.checkpoints],
            # With suggestions: the ranking the checkpoint loads apart, and the failure's incident page.
            "checkpoint suggestions": [f"/approvals/{pk}/suggestions/" for pk in work.checkpoints],
            "incident detail": [f"/incidents/{pk}/" for pk in work.incidents]}
    return {name: urls for name, urls in paths.items() if not ONLY or name in ONLY}


@dataclass
class Phase:
    """One phase of load: client-side latencies and the server's own request times, in ms per page."""

    latencies: dict[str, list[float]]
    server: dict[str, list[float]]
    generator_cpu: float  # share of one core the load generator used


def _server_times(paths: dict[str, list[str]], log_offset: int) -> dict[str, list[float]]:
    page_of = {path: name for name, page_paths in paths.items() for path in page_paths}
    times: dict[str, list[float]] = {name: [] for name in paths}
    with ACCESS_LOG.open() as log:
        log.seek(log_offset)
        for line in log:
            path, query, _status, micros = line.rstrip("\n").split("|")
            name = page_of.get(f"{path}?{query}" if query else path)
            if name:
                times[name].append(int(micros) / 1000)
    return times


def hammer(cookie: str, paths: dict[str, list[str]], *, clients: int = CLIENTS, think_seconds: float = THINK_SECONDS,
           requests_per_page: int = REQUESTS_PER_PAGE) -> Phase:
    """`clients` threads, each opening the pages in turn."""
    import httpx

    latencies: dict[str, list[float]] = {name: [] for name in paths}
    errors: list[str] = []
    lock = threading.Lock()
    plan = [name for name in paths for _ in range(requests_per_page)]
    random.Random(3).shuffle(plan)

    def client(share: list[str]) -> None:
        rng = random.Random(len(share))
        with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", cookies={"sessionid": cookie}, timeout=30) as http:
            for name in share:
                path = rng.choice(paths[name])
                begin = time.perf_counter()
                response = http.get(path)
                elapsed = (time.perf_counter() - begin) * 1000
                with lock:
                    if response.status_code != 200:
                        errors.append(f"{path}: {response.status_code}")
                    latencies[name].append(elapsed)
                time.sleep(think_seconds * rng.uniform(0.5, 1.5))

    log_offset = ACCESS_LOG.stat().st_size
    cpu_before, wall_before = time.process_time(), time.monotonic()
    threads = [threading.Thread(target=client, args=(plan[n::clients],)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    generator_cpu = (time.process_time() - cpu_before) / (time.monotonic() - wall_before)
    if errors:
        print(f"  {len(errors)} failed requests, first: {errors[:3]}", flush=True)
    time.sleep(0.2)  # the workers' last log lines
    return Phase(latencies, _server_times(paths, log_offset), generator_cpu)


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def report(who: str, phase: Phase) -> bool:
    ok = True
    for name, values in phase.latencies.items():
        p95 = _percentile(values, 0.95)
        ok &= p95 < GOAL_P95_MS
        print(f"| {who} | {name} | {len(values)} | {statistics.median(values):.1f} | {p95:.1f} | "
              f"{_percentile(values, 0.99):.1f} | {max(values):.1f} | {_percentile(phase.server[name], 0.95):.1f} | "
              f"{'ok' if p95 < GOAL_P95_MS else 'SLOW'} |", flush=True)
    return ok


def machine() -> str:
    import platform

    from django.db import connection

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        database = f"PostgreSQL {cursor.fetchone()[0].split()[0]}"
    return f"CPU {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; {database}"


def main() -> None:
    VAR.mkdir(exist_ok=True)
    setup_django()
    ensure_history()
    server = start_server()
    try:
        print(f"machine: {machine()}", flush=True)
        print(f"load average (1, 5, 15 min) at start: {load_average()}", flush=True)
        print(f"{CLIENTS} clients, {THINK_SECONDS} s think time, {SERVER_WORKERS} server workers, "
              f"goal p95 < {GOAL_P95_MS} ms; latencies in ms", flush=True)
        print("| who | page | n | p50 | p95 | p99 | max | server p95 | goal |\n| --- | --- | --- | --- | --- | --- | --- "
              "| --- | --- |", flush=True)
        ok, generator = True, []
        for username in BENCH_USERS:
            cookie, paths = session_cookie(username), page_paths(username)
            hammer(cookie, paths, requests_per_page=CLIENTS)  # warms every server worker's caches and connections
            # One client alone gives each page's service time, apart from queueing on a busy machine.
            report(f"{username} alone", hammer(cookie, paths, clients=1, think_seconds=0, requests_per_page=50))
            loaded = hammer(cookie, paths)
            ok &= report(f"{username} x{CLIENTS}", loaded)
            generator.append(loaded.generator_cpu)
        print(f"load generator CPU under {CLIENTS} clients: {', '.join(f'{share:.0%}' for share in generator)} "
              f"of one core", flush=True)
        print(f"load average (1, 5, 15 min) at end: {load_average()}", flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
