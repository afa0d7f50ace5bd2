"""Fixtures of the security tests: the console built once per module (tests/security/world.py),
each test rolled back to it, and the sizes of the matrix and the fuzz run in the summary."""

from collections import Counter

import pytest
from django.db import transaction

# What ran, for the terminal summary: filled by the tests of this folder.
SIZES: Counter = Counter()


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """The console of tests/security/world.py, in a transaction rolled back after the module; each
    test runs in a savepoint inside it (the `db` fixture), so tests cannot see each other's changes."""
    from django.test import override_settings

    from apps.knowledge import indexing
    from apps.knowledge.embedding import use_encoder
    from tests.knowledge.fakes import HashingEncoder
    from tests.security import world as console

    var_dir = tmp_path_factory.mktemp("security-var")
    # No broker is needed: attempts are played in this process, and the engine's sends wait for a
    # commit that never comes (everything here is rolled back).
    indexing._reader = None
    with django_db_blocker.unblock(), override_settings(VAR_DIR=var_dir, ARTIFACT_DIR=var_dir / "artifacts"), \
            use_encoder(HashingEncoder()):
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            yield console.build(var_dir / "artifacts")
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
            indexing._reader = None


@pytest.fixture
def console(world, db):
    """The module's console, in this test's savepoint."""
    return world


def pytest_terminal_summary(terminalreporter):
    if not SIZES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("security matrix and API fuzz")
    if SIZES["matrix_routes"]:
        write(f"access matrix: {SIZES['matrix_routes']} routes ({SIZES['matrix_api_routes']} API) x "
              f"{SIZES['matrix_roles']} roles; {SIZES['matrix_cells']} (route, method, role, transport) cells, "
              f"{SIZES['matrix_requests']} requests, {SIZES['matrix_refused']} refusals checked unchanged")
    if SIZES["fuzz_operations"]:
        write(f"API fuzz: {SIZES['fuzz_operations']} operations x {SIZES['fuzz_callers']} tokens, "
              f"{SIZES['fuzz_examples']} generated requests, none answered 5xx")
