"""`python -m bench`: run every benchmark module in its own process (each sets up its own database)."""

import subprocess
import sys

BENCHMARKS = ["bench.engine"]


def main() -> int:
    failed = 0
    for module in BENCHMARKS:
        print(f"== {module}", flush=True)
        failed += subprocess.call([sys.executable, "-m", module]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
