"""The DBOS peer of bench.engine's chain shapes, run by `make bench-peers` in its own virtualenv
(.venv-peers: DBOS is not a dependency of Flowdeck) and driven by bench/_peers.py: each line read
from stdin names a shape ("chain": 200 no-op steps one after another, "ten": 10), run as one DBOS
workflow in this process, each step's result checkpointed in PostgreSQL as DBOS does; each answer
is one JSON line {"shape": ..., "seconds": ...}.

    python bench/_dbos_peer.py DATABASE_URL
"""

import json
import sys
import time

from dbos import DBOS, DBOSConfig


@DBOS.step()
def noop(i: int) -> int:
    return i


@DBOS.workflow()
def chain(length: int) -> int:
    for i in range(length):
        noop(i)
    return length


SHAPES = {"chain": 200, "ten": 10}


def main(url: str) -> None:
    config: DBOSConfig = {"name": "flowdeck-bench-peer", "system_database_url": url}
    DBOS(config=config)
    DBOS.launch()
    chain(10)  # connections warm, as Flowdeck's workers are before timing
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        shape = line.strip()
        started = time.perf_counter()
        assert chain(SHAPES[shape]) == SHAPES[shape]
        print(json.dumps({"shape": shape, "seconds": time.perf_counter() - started}), flush=True)
    DBOS.destroy()


if __name__ == "__main__":
    main(sys.argv[1])
