"""Platform tests reuse the engine tests' in-process driver: `drive(run)` plays the worker."""

from tests.runs.conftest import drive, fresh_plans  # noqa: F401  (fixtures, registered by import)
