"""Modules that fake installed step type packages' entry points (tests/catalog/test_step_packages.py)."""
