"""SQL step types on configured connections: `sql.query` (read-only) and `sql.execute` (writes).

Two types rather than one with a `write` flag, because risk belongs to the type: the engine
holds high-risk steps for approval, and a low-risk type that could write would slip past it.
`sql.query` can never change data, whatever the SQL says: SQLite opens the file read-only with
`query_only` on; PostgreSQL runs the statement in a READ ONLY transaction through a server-side
cursor (one statement, no `COMMIT; ...` escape). `sql.execute` needs the connection's
`allow_writes` as well.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

import psycopg
from psycopg import errors as pg_errors

from apps.catalog.builtins.common import connection_named, jsonable
from apps.catalog.models import Connection
from apps.catalog.registry import PermanentStepError, Risk, StepContext, StepError, checked_params, step_type

STATEMENT_TIMEOUT_SECONDS = 300
READ_ONLY_REFUSAL = ("This step is read-only and the SQL tried to change data: use an `sql.execute` step "
                     "(high risk, needs approval) on a connection that allows writes.")


@dataclass
class SqlResult:
    columns: list[str]
    rows: Iterator[tuple]
    affected: int  # rows changed by a write; -1 when the driver does not know


def _sqlite_path(url: str) -> str:
    # sqlite:////abs/file.db is absolute, sqlite:///file.db relative to the working directory.
    return url.removeprefix("sqlite:///")


def _deny_attach(action, *_args):
    # ATTACH would let a query read any other SQLite file on the worker, Flowdeck's own included.
    return sqlite3.SQLITE_DENY if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH) else sqlite3.SQLITE_OK


@contextmanager
def _sqlite(connection: Connection, sql: str, params, write: bool) -> Iterator[SqlResult]:
    mode = "rw" if write else "ro"
    db = sqlite3.connect(f"file:{quote(_sqlite_path(connection.url))}?mode={mode}", uri=True, timeout=10)
    try:
        db.set_authorizer(_deny_attach)
        if not write:
            db.execute("PRAGMA query_only = ON")
        cursor = db.execute(sql, params)
        columns = [column[0] for column in cursor.description or ()]
        yield SqlResult(columns, iter(cursor), cursor.rowcount)
        if write:
            db.commit()
    except sqlite3.Error as exc:
        message = str(exc)
        if "readonly" in message or "query_only" in message or "attempt to write" in message:
            raise PermanentStepError(READ_ONLY_REFUSAL) from None
        if "locked" in message or "busy" in message:
            raise StepError(f"SQLite database {connection.name!r} is busy: {message}") from None
        raise PermanentStepError(f"SQL failed on {connection.name!r}: {message}") from None
    finally:
        db.close()


@contextmanager
def _postgres(connection: Connection, secret: str, sql: str, params, write: bool) -> Iterator[SqlResult]:
    try:
        db = psycopg.connect(connection.url, password=secret or None, connect_timeout=10,
                             options=f"-c statement_timeout={STATEMENT_TIMEOUT_SECONDS * 1000}")
    except psycopg.OperationalError as exc:
        raise StepError(f"Cannot connect to {connection.name!r}: {exc}".strip()) from None
    try:
        with db:
            if write:
                cursor = db.cursor()
                cursor.execute(sql, params)
                columns = [column.name for column in cursor.description or ()]
                yield SqlResult(columns, iter(cursor) if columns else iter(()), cursor.rowcount)
            else:
                db.read_only = True
                # A server-side cursor streams rows and takes exactly one statement.
                cursor = db.cursor(name="flowdeck_step")
                cursor.itersize = 500
                cursor.execute(sql, params)
                yield SqlResult([column.name for column in cursor.description or ()], iter(cursor), -1)
    except pg_errors.ReadOnlySqlTransaction:
        raise PermanentStepError(READ_ONLY_REFUSAL) from None
    except (pg_errors.SyntaxError, pg_errors.FeatureNotSupported) as exc:
        # The read path wraps the SQL in DECLARE CURSOR, so a write or a second statement reads as bad syntax.
        hint = "" if write else (" sql.query runs one read-only statement (SELECT, VALUES, WITH ... SELECT); "
                                 "to change data use sql.execute.")
        raise PermanentStepError(f"SQL failed on {connection.name!r}: {exc}".strip() + hint) from None
    except (pg_errors.QueryCanceled, pg_errors.SerializationFailure, pg_errors.DeadlockDetected,
            psycopg.OperationalError) as exc:
        raise StepError(f"SQL on {connection.name!r} did not complete, try again: {exc}".strip()) from None
    except psycopg.Error as exc:
        raise PermanentStepError(f"SQL failed on {connection.name!r}: {exc}".strip()) from None
    finally:
        db.close()


@contextmanager
def run_sql(ctx: StepContext, connection_name: str, sql: str, params=None, *,
            write: bool = False) -> Iterator[SqlResult]:
    """Run one statement on an sql connection the step's team may use; rows stream while the block is open."""
    connection, secret = connection_named(ctx, connection_name, "sql")
    if write and not connection.allow_writes:
        raise PermanentStepError(f"Connection {connection.name!r} does not allow writes: ask a platform admin to "
                                 f"turn on 'allow writes' for it, or use a read-only `sql.query` step.")
    if connection.url.startswith("sqlite:"):
        with _sqlite(connection, sql, params or (), write) as result:
            yield result
    else:
        with _postgres(connection, secret, sql, params or None, write) as result:
            yield result


def _common_properties(sql_description: str) -> dict:
    return {
        "connection": {"type": "string", "minLength": 1, "description": "The name of an sql connection."},
        "sql": {"type": "string", "minLength": 1, "description": sql_description},
        "params": {"type": ["array", "object"],
                   "description": "Values for the placeholders, kept apart from the SQL text (never paste values "
                                  "into it): a list for `?` (SQLite) or `%s` (PostgreSQL), an object for "
                                  "`:name` (SQLite) or `%(name)s` (PostgreSQL)."},
        "max_rows": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100,
                     "description": "At most this many rows are kept in the output; `row_count` still counts all."},
    }


def _schema(sql_description: str) -> dict:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
            "additionalProperties": False, "required": ["connection", "sql"],
            "properties": _common_properties(sql_description)}


def _collect(result: SqlResult, max_rows: int) -> dict:
    rows, count = [], 0
    for row in result.rows:
        count += 1
        if count <= max_rows:
            rows.append([jsonable(value) for value in row])
    return {"columns": result.columns, "rows": rows, "row_count": count, "truncated": count > len(rows)}


OUTPUT_DOC = """**Output:** `{"columns": ["id", ...], "rows": [[1, ...], ...], "row_count": 42, "truncated": false}`;
rows beyond `max_rows` are counted but not kept. Dates become ISO text, decimals numbers."""


@step_type(
    "sql.query", params_schema=_schema("One read-only statement, for example a SELECT."),
    summary="Run a read-only SQL query on a configured connection and return the rows.",
    doc=f"""Runs one statement on an sql connection (SQLite or PostgreSQL) that a platform admin set up.
It can never change data, whatever the SQL says; to write, use `sql.execute`.

{OUTPUT_DOC}

**Errors:**
- SQL that tries to write, a syntax error, an unknown connection: permanent, never retried;
- a connection failure, a statement timeout ({STATEMENT_TIMEOUT_SECONDS}s), a busy database or a
  serialization failure: retryable per the step's `retries`.""",
    timeout_seconds=STATEMENT_TIMEOUT_SECONDS + 30,
    example={"connection": "sales-db", "sql": "SELECT region, sum(amount) AS total FROM orders "
                                              "WHERE period = :period GROUP BY region",
             "params": {"period": "{{ inputs.period }}"}, "max_rows": 100},
    idempotent=True,
)
def sql_query(ctx: StepContext):
    params = checked_params(ctx, "sql.query")
    with run_sql(ctx, params["connection"], params["sql"], params.get("params")) as result:
        output = _collect(result, params["max_rows"])
    ctx.add_metrics(records_in=output["row_count"])
    return output


@step_type(
    "sql.execute", params_schema=_schema("The statement that changes data: INSERT, UPDATE, DELETE, ..."),
    summary="Change data with SQL on a connection that allows writes (high risk: needs approval).",
    doc=f"""Runs one statement that changes data, in one transaction committed at the end. The connection
must have *allow writes* turned on by a platform admin. High risk: the engine holds the step for
approval before it runs. Repeating it repeats the change, so write statements that are safe to
run twice (`INSERT ... ON CONFLICT DO NOTHING`, `UPDATE ... WHERE status = 'pending'`).

{OUTPUT_DOC} `row_count` is the number of rows changed; `rows` holds what a RETURNING clause returned.

**Errors:**
- a connection without allow writes, a constraint violation, a syntax error: permanent;
- a connection failure, a statement timeout, a busy database or a deadlock: retryable.""",
    risk=Risk.HIGH,
    timeout_seconds=STATEMENT_TIMEOUT_SECONDS + 30,
    example={"connection": "sales-db", "sql": "UPDATE invoices SET status = 'sent' "
                                              "WHERE period = :period AND status = 'ready'",
             "params": {"period": "{{ inputs.period }}"}},
)
def sql_execute(ctx: StepContext):
    params = checked_params(ctx, "sql.execute")
    with run_sql(ctx, params["connection"], params["sql"], params.get("params"), write=True) as result:
        output = _collect(result, params["max_rows"])
        if result.affected >= 0:
            output["row_count"] = result.affected
    ctx.add_metrics(records_out=output["row_count"])
    return output
