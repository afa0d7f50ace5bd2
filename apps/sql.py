"""What the apps' hand-written SQL statements share (the engine's per-step statements, the audit append)."""

import functools

from django.db import connection


@functools.cache
def typed_placeholders(fields: tuple) -> str:
    """One row's placeholders, each cast to its field's column type: the rows of a query (a SELECT
    or a VALUES list joined to another row), unlike an INSERT's own VALUES, get no types from the
    table. Built once per set of fields: the statements using it run once per step."""
    return ", ".join(f"CAST(%s AS {field.db_type(connection)})" for field in fields)
