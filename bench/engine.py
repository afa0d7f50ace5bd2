"""Engine benchmark: per-step overhead of the engine against plain Celery, on one broker.

(a) a chain of 200 no-op steps, (b) one step fanning out to 500 parallel no-op steps and a
fan-in, (c) the same 200-hop chain as plain Celery tasks with no engine (the floor), (d) a run of
10 sequential steps from its creation to its end (the median of BENCH_ENGINE_SHORT_RUNS, 20). Workers
are real `celery worker` processes (BENCH_WORKERS, default 2, one prefork child each) on the broker
and database given by CELERY_BROKER_URL / DATABASE_URL; the benchmark uses its own database
(var/bench.sqlite3, or <name>_bench_engine on PostgreSQL) so it never touches real runs.
BENCH_ENGINE_SHAPES picks shapes (default "chain,fan,plain,ten"); BENCH_ENGINE_ROUNDS (default 1)
runs them in interleaved rounds and reports each round and the medians.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from celery import shared_task

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
CHAIN_LENGTH = 200
FAN_OUT = 500
SHORT_LENGTH = 10
PLAIN_QUEUE = "steps"
SHAPES = ("chain", "fan", "plain", "ten")


@shared_task(name="bench.plain_hop", ignore_result=True)
def plain_hop(remaining: int, done_file: str) -> None:
    """One hop of the plain-Celery chain: enqueue the next hop, or note the end time."""
    if remaining:
        plain_hop.apply_async(args=[remaining - 1, done_file], queue=PLAIN_QUEUE)
    else:
        Path(done_file).write_text(repr(time.time()))


def bench_database_url(bench: str = "engine") -> str:
    configured = os.environ.get("DATABASE_URL", "")
    if not configured.startswith(("postgres://", "postgresql://")):
        (VAR / "bench.sqlite3").unlink(missing_ok=True)
        return f"sqlite:///{VAR / 'bench.sqlite3'}"
    parts = urlsplit(configured)
    name = parts.path.lstrip("/") + f"_bench_{bench}"
    import psycopg

    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def prepare_environment(bench: str = "engine") -> None:
    VAR.mkdir(exist_ok=True)
    os.environ["DATABASE_URL"] = bench_database_url(bench)
    os.environ["FLOWDECK_TEST_STEP_TYPES"] = "1"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # The engine's workers never rank a failure: no model loading beside the steps measured.
    os.environ.setdefault("FLOWDECK_KNOWLEDGE_WARMUP", "0")
    if os.environ.get("CELERY_BROKER_URL", "filesystem://").startswith("filesystem://"):
        broker = VAR / "bench-broker"
        shutil.rmtree(broker, ignore_errors=True)
        os.environ["FLOWDECK_BROKER_DIR"] = str(broker)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.settings")


def start_workers(count: int, *, label: str = "bench", include: str = "bench.engine",
                  queues: str = "steps,default") -> list[subprocess.Popen]:
    """`count` single-process workers on `queues`, `include` imported in each."""
    workers = []
    for number in range(count):
        log = VAR / f"{label}-worker-{number}.log"
        workers.append(subprocess.Popen(
            [str(Path(sys.executable).parent / "celery"), "-A", "apps", "worker", "-I", include,
             "--pool=prefork", "--concurrency=1", "-Q", queues, "-n", f"{label}{number}-{os.getpid()}@%h",
             "--without-gossip", "--without-mingle", "--loglevel=INFO"],
            cwd=ROOT, env=os.environ.copy(), stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 60
        # The banner is printed whatever the log level; the warm-up run then proves they consume.
        while "[tasks]" not in log.read_text():
            if workers[-1].poll() is not None or time.monotonic() > deadline:
                stop_workers(workers)
                raise SystemExit(f"worker {number} did not start; see {log}")
            time.sleep(0.1)
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


def run_workflow(team, steps, name: str) -> float:
    """Seconds from the run's creation to its end, as the database recorded them."""
    from apps.runs import engine
    from apps.runs.models import RunState
    from tests.runs.factories import make_version

    run = engine.start_run(None, make_version(team, steps, name=name))
    deadline = time.monotonic() + 600
    while run.state not in (RunState.SUCCEEDED, RunState.FAILED):
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} did not finish in 10 minutes (state {run.state})")
        time.sleep(0.02)
        run.refresh_from_db()
    if run.state != RunState.SUCCEEDED:
        raise SystemExit(f"{name} ended {run.state}: {run.failure_summary}")
    return (run.finished_at - run.created_at).total_seconds()


def run_plain_chain() -> float:
    done = VAR / f"bench-plain-{os.getpid()}.done"
    done.unlink(missing_ok=True)
    started = time.time()
    plain_hop.apply_async(args=[CHAIN_LENGTH - 1, str(done)], queue=PLAIN_QUEUE)
    deadline = time.monotonic() + 600
    while not done.exists() or not done.read_text():
        if time.monotonic() > deadline:
            raise SystemExit("the plain Celery chain did not finish in 10 minutes")
        time.sleep(0.01)
    finished = float(done.read_text())
    done.unlink()
    return finished - started


def machine() -> str:
    from django.conf import settings
    from django.db import connection

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            database = f"PostgreSQL {cursor.fetchone()[0]}"
        else:
            cursor.execute("SELECT sqlite_version()")
            database = f"SQLite {cursor.fetchone()[0]} (WAL)"
    broker = urlsplit(settings.CELERY_BROKER_URL).scheme
    return (f"CPU {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; {database}; "
            f"broker {broker}; {os.environ.get('BENCH_WORKERS', '2')} worker processes")


def shapes() -> list[str]:
    chosen = [name.strip() for name in os.environ.get("BENCH_ENGINE_SHAPES", ",".join(SHAPES)).split(",") if name.strip()]
    unknown = set(chosen) - set(SHAPES)
    if unknown:
        raise SystemExit(f"BENCH_ENGINE_SHAPES: unknown {', '.join(sorted(unknown))}; choose from {', '.join(SHAPES)}")
    return chosen


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    prepare_environment()
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.accounts.models import Team
    from apps.runs import testing_steps  # noqa: F401  (registers test.noop here too)
    from tests.runs.factories import chain, step

    chosen = shapes()
    rounds = int(os.environ.get("BENCH_ENGINE_ROUNDS", "1"))
    short_runs = int(os.environ.get("BENCH_ENGINE_SHORT_RUNS", "20"))
    fan = [step("root", "test.noop")] + [step(f"p{i}", "test.noop", needs=["root"]) for i in range(FAN_OUT)]
    fan.append(step("join", "test.noop", needs=[f"p{i}" for i in range(FAN_OUT)]))
    measure = {
        "chain": lambda: run_workflow(team, chain(CHAIN_LENGTH), "chain"),
        "fan": lambda: run_workflow(team, fan, "fan"),
        "plain": run_plain_chain,
        "ten": lambda: statistics.median(run_workflow(team, chain(SHORT_LENGTH), "ten") for _ in range(short_runs)),
    }
    team = Team.objects.create(slug="bench", name="Bench")
    print(f"load average (1, 5, 15 min) at start: {load_average()}", flush=True)
    results: dict[str, list[float]] = {name: [] for name in chosen}
    workers = start_workers(int(os.environ.get("BENCH_WORKERS", "2")))
    try:
        run_workflow(team, chain(5), "warm-up")
        run_plain_chain()
        for number in range(rounds):
            for name in chosen:
                results[name].append(measure[name]())
            print(f"round {number + 1}: " + ", ".join(f"{name} {results[name][-1]:.3f} s" for name in chosen)
                  + f"; load average {load_average()}", flush=True)
    finally:
        stop_workers(workers)
    print(f"machine: {machine()}")
    print(f"load average (1, 5, 15 min) at end: {load_average()}")
    median = {name: statistics.median(values) for name, values in results.items()}
    of = f" (median of {rounds} rounds)" if rounds > 1 else ""
    if "chain" in median:
        print(f"(a) chain of {CHAIN_LENGTH} steps: {median['chain']:.2f} s, "
              f"{median['chain'] / CHAIN_LENGTH * 1000:.1f} ms per step{of}")
    if "fan" in median:
        print(f"(b) fan-out to {FAN_OUT} and fan-in: {median['fan']:.2f} s, "
              f"{median['fan'] / (FAN_OUT + 2) * 1000:.1f} ms per step{of}")
    if "plain" in median:
        print(f"(c) plain Celery chain of {CHAIN_LENGTH} tasks: {median['plain']:.2f} s, "
              f"{median['plain'] / CHAIN_LENGTH * 1000:.1f} ms per task{of}")
    if "ten" in median:
        print(f"(d) {SHORT_LENGTH} sequential steps, creation to end: {median['ten'] * 1000:.1f} ms "
              f"(median of {short_runs} runs a round){of}")
    if "chain" in median and "plain" in median:
        print(f"engine overhead ratio (a)/(c): {median['chain'] / median['plain']:.2f}x")


if __name__ == "__main__":
    main()
