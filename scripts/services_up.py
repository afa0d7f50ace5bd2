"""Exit 0 when PostgreSQL and Redis answer on their usual local ports, else 1 (naming what is down)."""

import socket
import sys

SERVICES = {"PostgreSQL": ("127.0.0.1", 5432), "Redis": ("127.0.0.1", 6379)}


def main() -> int:
    down = []
    for name, address in SERVICES.items():
        try:
            socket.create_connection(address, timeout=2).close()
        except OSError:
            down.append(f"{name} at {address[0]}:{address[1]}")
    if down and "--quiet" not in sys.argv:
        print("Not reachable: " + ", ".join(down), file=sys.stderr)
    return 1 if down else 0


if __name__ == "__main__":
    sys.exit(main())
