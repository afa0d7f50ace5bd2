"""Throughput benchmark: runs of a 3-step workflow started through the API at a steady rate.

A real server (gunicorn, BENCH_SERVER_WORKERS sync processes) takes `POST /api/v1/workflows/<id>/runs`
with an API token; real workers (BENCH_WORKERS single-process `celery worker`s) run the steps, on
the broker and database of CELERY_BROKER_URL / DATABASE_URL (its own database, <name>_bench_throughput,
as bench.engine does). Each phase offers runs for BENCH_THROUGHPUT_SECONDS (default 60) at one
rate, open loop (requests leave on a schedule, whatever the answers take), then waits for every
run to end; "max" is closed loop instead: BENCH_CLIENTS clients post back to back, to find the
sustained maximum. Reported per phase: POST latency p50/p95 seen by the client, runs completed
per minute (runs / time from the first POST to the last run's end), and start-to-finish p50/p95
(the run's creation to its end, as the database recorded them). Targets: 3,000 runs/min
sustained, start-to-finish p95 < 2 s at 1,000 runs/min, POST p95 < 50 ms at 20 requests/s.
BENCH_THROUGHPUT_RATES picks the phases ("20/s,1000/min,max" by default). The load generator
shares the machine with the server, workers and database: the load average is printed before
and after each phase, so run it on an otherwise idle machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine import VAR, machine, prepare_environment, start_workers, stop_workers  # noqa: E402
from bench.pages import _percentile as percentile, load_average  # noqa: E402

SECONDS = float(os.environ.get("BENCH_THROUGHPUT_SECONDS", "60"))
RATES = os.environ.get("BENCH_THROUGHPUT_RATES", "20/s,1000/min,max")
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "16"))
SERVER_WORKERS = int(os.environ.get("BENCH_SERVER_WORKERS", "2"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
STEPS = 3
GOAL_RUNS_PER_MINUTE = 3000
GOAL_FINISH_P95_SECONDS = 2.0  # at 1,000 runs/min offered
GOAL_POST_P95_MS = 50  # at 20 requests/s


def per_second(rate: str) -> float | None:
    """'20/s' -> 20.0, '1000/min' -> 16.7, 'max' -> None (closed loop)."""
    if rate == "max":
        return None
    count, _, unit = rate.partition("/")
    return float(count) / {"s": 1, "min": 60}[unit]


@dataclass
class Phase:
    rate: str
    posts_ms: list[float] = field(default_factory=list)
    run_ids: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    late: int = 0  # open loop: requests that left more than 100 ms after their slot (the generator fell behind)
    started: float = 0.0  # wall clock of the first POST


def free_port() -> int:
    """A port no server holds now: a fixed one let a server left from an earlier run (bound to it,
    serving another database) answer the first requests with 401 while ours retried its bind."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, workflow_id: int, key: str) -> subprocess.Popen:
    """gunicorn on `port`, once it answers an authenticated request for the bench's own workflow:
    proof that the server taking the runs is this one, on this database."""
    log = VAR / "bench-throughput-server.log"
    gunicorn = Path(sys.executable).parent / "gunicorn"
    env = {**os.environ, "DEBUG": "0", "DB_CONN_MAX_AGE": "600"}
    server = subprocess.Popen([str(gunicorn), "apps.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(SERVER_WORKERS)],
                              cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    import httpx

    probe = f"http://127.0.0.1:{port}/api/v1/workflows/{workflow_id}"
    answer = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            answer = httpx.get(probe, headers={"Authorization": f"Bearer {key}"}, timeout=2)
            if answer.status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_server(server)
    seen = f"; last answer {answer.status_code} {answer.text[:200]}" if answer is not None else ""
    raise SystemExit(f"the server did not answer for the bench's workflow on port {port}{seen}:\n{log.read_text()}")


def stop_server(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


def offer(url: str, key: str, phase: Phase, seconds: float = SECONDS) -> None:
    """Post runs for `seconds`: on a schedule at the phase's rate, or back to back from CLIENTS clients."""
    import httpx

    rate = per_second(phase.rate)
    total = int(seconds * rate) if rate else None
    lock = threading.Lock()
    next_slot = [0]
    phase.started = time.time()
    begin = time.monotonic()

    def client() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            while True:
                with lock:
                    slot = next_slot[0]
                    next_slot[0] += 1
                if rate:
                    if slot >= total:
                        return
                    wait = begin + slot / rate - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    elif wait < -0.1:
                        with lock:
                            phase.late += 1
                elif time.monotonic() - begin >= seconds:
                    return
                sent = time.perf_counter()
                try:
                    answer = http.post(url, json={"inputs": {}})
                except httpx.HTTPError as exc:
                    with lock:
                        phase.failures.append(repr(exc))
                    continue
                took = (time.perf_counter() - sent) * 1000
                with lock:
                    if answer.status_code == 201:
                        phase.posts_ms.append(took)
                        phase.run_ids.append(answer.json()["id"])
                    else:
                        phase.failures.append(f"{time.monotonic() - begin:.2f}s {answer.status_code} {answer.text[:200]}")

    clients = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()


def wait_for_runs(run_ids: list[int]) -> None:
    from apps.runs.models import Run, RunState

    unfinished = Run.objects.filter(pk__in=run_ids).exclude(state__in=[RunState.SUCCEEDED, RunState.FAILED])
    deadline = time.monotonic() + max(120.0, SECONDS * 5)
    while unfinished.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{unfinished.count()} runs did not end in time; see {VAR}/bench-throughput-worker-*.log")
        time.sleep(0.2)


def report(phase: Phase, load_before: str) -> None:
    from django.db.models import Max

    from apps.runs.models import Run, RunState

    runs = Run.objects.filter(pk__in=phase.run_ids)
    times = list(runs.values_list("state", "created_at", "finished_at"))
    failed = sum(1 for state, _, _ in times if state != RunState.SUCCEEDED)
    finish = [(finished - created).total_seconds() for _, created, finished in times]
    last_end = runs.aggregate(last=Max("finished_at"))["last"]
    minutes = (last_end.timestamp() - phase.started) / 60 if last_end else float("nan")
    offered = len(phase.posts_ms) / SECONDS * 60
    print(f"| {phase.rate} | {offered:.0f} | {percentile(phase.posts_ms, 0.5):.1f} | "
          f"{percentile(phase.posts_ms, 0.95):.1f} | {len(times) / minutes:.0f} | {percentile(finish, 0.5):.2f} | "
          f"{percentile(finish, 0.95):.2f} | {len(times)} ({failed} failed, {len(phase.failures)} refused, "
          f"{phase.late} late) | {load_before} -> {load_average()} |", flush=True)
    for failure in phase.failures[:3]:
        print(f"  refused: {failure}", flush=True)


def setup_workflow() -> tuple[int, str]:
    from apps.accounts.models import Membership, Team, User
    from apps.accounts.services import issue_token
    from apps.runs import testing_steps  # noqa: F401  (registers test.noop here too)
    from tests.runs.factories import chain, make_version

    team = Team.objects.create(slug="bench", name="Bench")
    operator = User.objects.create_user("bench-operator", password="bench-throughput")
    Membership.objects.create(user=operator, team=team, role="operator")
    version = make_version(team, chain(STEPS), name="three-steps")
    _, key = issue_token(operator, "bench throughput")
    return version.workflow_id, key


def main() -> None:
    prepare_environment("throughput")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    workflow_id, key = setup_workflow()
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1/workflows/{workflow_id}/runs"
    workers = start_workers(WORKERS, label="bench-throughput")
    server = start_server(port, workflow_id, key)
    try:
        warm_up = Phase("5/s")
        offer(url, key, warm_up, seconds=2)
        wait_for_runs(warm_up.run_ids)
        if warm_up.failures:
            raise SystemExit(f"the warm-up's requests were refused: {warm_up.failures[:3]}")
        print(f"machine: {machine()}; server: gunicorn, {SERVER_WORKERS} sync workers; load generator: "
              f"{CLIENTS} httpx clients on the same machine", flush=True)
        print(f"{STEPS}-step no-op workflow, each phase offered for {SECONDS:.0f} s; goals: {GOAL_RUNS_PER_MINUTE} "
              f"runs/min sustained, start-to-finish p95 < {GOAL_FINISH_P95_SECONDS} s at 1000/min, POST p95 < "
              f"{GOAL_POST_P95_MS} ms at 20/s", flush=True)
        print("| offered | posted runs/min | POST p50 ms | POST p95 ms | completed runs/min | start-to-finish p50 s "
              "| p95 s | runs | load average |", flush=True)
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
        for rate in RATES.split(","):
            phase = Phase(rate.strip())
            load_before = load_average()
            offer(url, key, phase)
            wait_for_runs(phase.run_ids)
            report(phase, load_before)
    finally:
        stop_server(server)
        stop_workers(workers)


if __name__ == "__main__":
    main()
