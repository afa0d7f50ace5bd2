"""`python -m bench`: run every benchmark module of this package, each in its own process (each
sets up its own database and workers). `python -m bench engine batch` runs only those."""

import pkgutil
import subprocess
import sys
from pathlib import Path


def main(selected: list[str]) -> int:
    modules = sorted(info.name for info in pkgutil.iter_modules([str(Path(__file__).parent)])
                     if not info.name.startswith("_"))
    failed = 0
    for name in selected or modules:
        print(f"== bench.{name}", flush=True)
        failed += subprocess.call([sys.executable, "-m", f"bench.{name}"]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
