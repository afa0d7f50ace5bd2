"""Benchmarks: `python -m bench` runs every benchmark module, each in its own process."""
