"""Approval benchmark: latency from the final approval of a gate to its step running.

Starts BENCH_APPROVALS (default 120) runs whose first step waits for approval, then approves
them one by one through `approvals.services.decide_gate` and measures, from the database, the
time from the request's decision to a real worker claiming the step's attempt. The step is
enqueued on the decision's commit, never on a polling interval, so this is broker + worker
pick-up time. Uses its own database like bench.engine (var/bench.sqlite3 or <name>_bench).

    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 DATABASE_URL=postgres://postgres@127.0.0.1:5432/flowdeck \\
        .venv/bin/python -m bench.approvals
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from bench.engine import ROOT, machine, prepare_environment, start_workers, stop_workers

WARM_UP = 5


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def approve_and_time(approver, request) -> float:
    """Approve `request` and wait until its step's attempt is claimed; seconds in between."""
    from apps.approvals import services
    from apps.runs.models import StepAttempt

    services.decide_gate(approver, request, "approve")
    request.refresh_from_db()
    deadline = time.monotonic() + 60
    while True:
        started = StepAttempt.objects.filter(step_run=request.step_run_id).values_list("started_at", flat=True).first()
        if started is not None:
            return (started - request.decided_at).total_seconds()
        if time.monotonic() > deadline:
            raise SystemExit(f"the step of request {request.pk} did not start within 60 s of its approval")
        time.sleep(0.002)


def main() -> None:
    prepare_environment()
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.accounts import services as accounts
    from apps.accounts.models import Role, User
    from apps.approvals.models import ApprovalRequest
    from apps.runs import engine
    from apps.runs import testing_steps  # noqa: F401  (registers test.noop here too)
    from tests.runs.factories import make_version, step

    count = int(os.environ.get("BENCH_APPROVALS", "120"))
    team = accounts.create_team(None, slug="bench", name="Bench")
    starter = User.objects.create_user("bench-starter")
    approver = User.objects.create_user("bench-approver")
    accounts.grant_role(None, user=approver, team=team, role=Role.APPROVER)
    accounts.create_approver_group(None, slug="bench-approvers", name="Bench approvers", team=team,
                                   members=[approver])
    version = make_version(team, [step("pay", "test.noop", approval={
        "group": "bench-approvers", "quorum": 1, "timeout": None, "escalate_to": None, "on_expiry": "reject"})],
        name="gated")
    runs = [engine.start_run(starter, version) for _ in range(count + WARM_UP)]
    requests = list(ApprovalRequest.objects.filter(run__in=runs).order_by("pk"))
    workers = start_workers(int(os.environ.get("BENCH_WORKERS", "2")))
    try:
        for request in requests[:WARM_UP]:
            approve_and_time(approver, request)
        latencies = [approve_and_time(approver, request) for request in requests[WARM_UP:]]
    finally:
        stop_workers(workers)
    print(f"machine: {machine()}")
    print(f"approval to step running over {len(latencies)} approvals: p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
          f"p95 {percentile(latencies, 0.95) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms, "
          f"mean {statistics.mean(latencies) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
