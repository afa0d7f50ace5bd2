"""Tracing overhead: the engine's per-step time on a chain of no-op steps, with OpenTelemetry off and
with an OTLP/HTTP exporter configured (pointing at a receiver this process runs on 127.0.0.1).
Two sets of workers run side by side, one without and one with the exporter, each on its own
queue; chains alternate between them, so a machine whose load drifts affects both alike, and the
medians are compared."""

from __future__ import annotations

import os
import statistics
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.engine import ROOT, machine, prepare_environment, run_workflow, start_workers, stop_workers

CHAIN_LENGTH = 200
ROUNDS = int(os.environ.get("BENCH_TRACING_ROUNDS", "8"))


class _Receiver(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports and keeps them; their spans are counted after the timing (a
    collector runs on another machine: decoding here would take CPU from the workers measured)."""

    def do_POST(self):
        self.server.exports.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def _spans_in(exports: list[bytes]) -> int:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    return sum(len(scope.spans) for body in exports for resource in ExportTraceServiceRequest.FromString(body)
               .resource_spans for scope in resource.scope_spans)


def cpu_seconds(workers) -> float:
    """User and system CPU time of the workers and their pool processes so far (Linux /proc)."""
    pids = {worker.pid for worker in workers}
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(stat.parent.name) in pids or int(fields[1]) in pids:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def workers_for(queue: str, endpoint: str | None):
    os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    if endpoint:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    try:
        return start_workers(int(os.environ.get("BENCH_WORKERS", "2")), label=f"tracing-{queue}", queues=queue)
    finally:
        os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)


def main() -> None:
    prepare_environment()
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.accounts.models import Team
    from apps.runs import testing_steps  # noqa: F401  (registers test.noop here too)
    from tests.runs.factories import step

    def chain(length: int, queue: str) -> list[dict]:
        return [step(f"s{i}", "test.noop", needs=[f"s{i - 1}"] if i else [], queue=queue) for i in range(length)]

    team = Team.objects.create(slug="bench", name="Bench")
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    receiver.exports = []
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    workers = {"untraced": workers_for("untraced", None),
               "traced": workers_for("traced", f"http://127.0.0.1:{receiver.server_address[1]}")}
    times = {"untraced": [], "traced": []}
    cpu = {"untraced": [], "traced": []}
    try:
        for queue in times:
            run_workflow(team, chain(5, queue), f"warm-up-{queue}")
        for number in range(ROUNDS):
            for queue in times if number % 2 == 0 else reversed(times):
                before = cpu_seconds(workers[queue])
                times[queue].append(run_workflow(team, chain(CHAIN_LENGTH, queue), f"chain-{queue}"))
                cpu[queue].append(cpu_seconds(workers[queue]) - before)
    finally:
        stop_workers(workers["untraced"] + workers["traced"])
        receiver.shutdown()
    spans = _spans_in(receiver.exports)
    per_step = {queue: statistics.median(seconds) / CHAIN_LENGTH * 1000 for queue, seconds in times.items()}
    print(f"machine: {machine()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for queue, seconds in times.items():
        print(f"{queue}: chains of {CHAIN_LENGTH} steps took {' '.join(f'{t:.2f}' for t in seconds)} s, "
              f"worker CPU {' '.join(f'{t:.2f}' for t in cpu[queue])} s")
    cpu_per_step = {queue: statistics.median(seconds) / CHAIN_LENGTH * 1000 for queue, seconds in cpu.items()}
    print(f"per step (median): untraced {per_step['untraced']:.2f} ms, traced {per_step['traced']:.2f} ms "
          f"({(per_step['traced'] / per_step['untraced'] - 1) * 100:+.1f}%); worker CPU per step: untraced "
          f"{cpu_per_step['untraced']:.2f} ms, traced {cpu_per_step['traced']:.2f} ms "
          f"({(cpu_per_step['traced'] / cpu_per_step['untraced'] - 1) * 100:+.1f}%); spans received: {spans}")


if __name__ == "__main__":
    main()
