"""Flowdeck beside DBOS, in interleaved rounds on one PostgreSQL (`make bench-peers`).

Shapes: a chain of 200 no-op steps and 10 sequential steps. Each round runs Flowdeck's chain (its
real Celery workers, as bench.engine), DBOS's (bench/_dbos_peer.py, a process of .venv-peers kept
alive between rounds), plain Celery's 200 hops (the floor), then both ten-step workflows; the
order alternates between rounds so a drifting load weighs on each alike. Medians are printed with
the ratios, the machine and the load average before and after. DBOS keeps its state in its own
database, <name>_bench_dbos, next to Flowdeck's <name>_bench_peers.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from bench.engine import (CHAIN_LENGTH, ROOT, bench_database_url, machine, prepare_environment, run_plain_chain,
                          run_workflow, start_workers, stop_workers)

ROUNDS = int(os.environ.get("BENCH_PEERS_ROUNDS", "7"))
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
SHAPES = {"chain": CHAIN_LENGTH, "ten": 10}


class DbosPeer:
    def __init__(self, url: str):
        self.process = subprocess.Popen([str(PEERS_PYTHON), str(ROOT / "bench" / "_dbos_peer.py"), url],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert json.loads(self.process.stdout.readline()) == {"ready": True}, "the DBOS peer did not start"

    def run(self, shape: str) -> float:
        self.process.stdin.write(shape + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())["seconds"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def main() -> None:
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        raise SystemExit("bench peers compares on PostgreSQL: set DATABASE_URL (make bench-peers does)")
    dbos_url = bench_database_url("dbos").replace("postgres://", "postgresql://", 1)
    prepare_environment("peers")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.accounts.models import Team
    from apps.runs import testing_steps  # noqa: F401  (registers test.noop here too)
    from tests.runs.factories import chain

    team = Team.objects.create(slug="bench", name="Bench")
    load_before = os.getloadavg()
    workers = start_workers(int(os.environ.get("BENCH_WORKERS", "2")))
    peer = DbosPeer(dbos_url)
    times = {(who, shape): [] for who in ("flowdeck", "dbos") for shape in SHAPES} | {("celery", "chain"): []}
    try:
        run_workflow(team, chain(5), "warm-up")
        run_plain_chain()
        for number in range(ROUNDS):
            for shape, length in SHAPES.items():
                order = ["flowdeck", "dbos"] if number % 2 == 0 else ["dbos", "flowdeck"]
                for who in order:
                    seconds = run_workflow(team, chain(length), f"{shape}-{number}") if who == "flowdeck" \
                        else peer.run(shape)
                    times[who, shape].append(seconds)
                if shape == "chain":
                    times["celery", "chain"].append(run_plain_chain())
    finally:
        peer.close()
        stop_workers(workers)
    median = {key: statistics.median(values) for key, values in times.items()}
    print(f"machine: {machine()}")
    print(f"load average before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {ROUNDS} interleaved rounds, medians")
    print("| shape | Flowdeck | DBOS | plain Celery | Flowdeck / DBOS | Flowdeck / Celery |")
    print("| --- | --- | --- | --- | --- | --- |")
    for shape, length in SHAPES.items():
        flowdeck, dbos = median["flowdeck", shape], median["dbos", shape]
        celery = median.get(("celery", shape))
        print(f"| {length} steps | {flowdeck * 1000:.0f} ms | {dbos * 1000:.0f} ms | "
              f"{f'{celery * 1000:.0f} ms' if celery else '–'} | {flowdeck / dbos:.2f}x | "
              f"{f'{flowdeck / celery:.2f}x' if celery else '–'} |")


if __name__ == "__main__":
    main()
