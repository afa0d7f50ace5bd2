"""sql.query reads and can never write; sql.execute writes only through connections that allow it."""

import sqlite3
import uuid

import psycopg
import pytest

from apps.catalog.registry import PermanentStepError

from .fakes import run_step

pytestmark = pytest.mark.django_db


def _amounts(path):
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT amount FROM orders ORDER BY id")]


def test_query_returns_columns_rows_and_count(sales_db, make_connection):
    make_connection(url=f"sqlite:///{sales_db}")
    output, ctx = run_step("sql.query", {"connection": "sales-db",
                                         "sql": "SELECT region, amount FROM orders WHERE amount > :low ORDER BY id",
                                         "params": {"low": 6}})
    assert output == {"columns": ["region", "amount"], "rows": [["north", 10.5], ["south", 20.0]],
                      "row_count": 2, "truncated": False}
    assert ctx.metrics["records_in"] == 2


def test_query_keeps_max_rows_but_counts_all(sales_db, make_connection):
    make_connection(url=f"sqlite:///{sales_db}")
    output, _ = run_step("sql.query", {"connection": "sales-db", "sql": "SELECT id FROM orders ORDER BY id",
                                       "max_rows": 2})
    assert output["rows"] == [[1], [2]] and output["row_count"] == 3 and output["truncated"] is True


@pytest.mark.parametrize("statement", ["UPDATE orders SET amount = 0", "DELETE FROM orders",
                                       "INSERT INTO orders VALUES (9, 'west', 1)"])
def test_query_refuses_writes_even_on_a_connection_that_allows_them(sales_db, make_connection, statement):
    make_connection(url=f"sqlite:///{sales_db}", allow_writes=True)
    with pytest.raises(PermanentStepError, match="read-only"):
        run_step("sql.query", {"connection": "sales-db", "sql": statement})
    assert _amounts(sales_db) == [10.5, 20.0, 5.0]


def test_query_cannot_attach_another_database(sales_db, make_connection, tmp_path):
    make_connection(url=f"sqlite:///{sales_db}")
    with pytest.raises(PermanentStepError, match="not authorized"):
        run_step("sql.query", {"connection": "sales-db", "sql": f"ATTACH DATABASE '{tmp_path}/other.db' AS other"})


def test_execute_is_refused_when_the_connection_does_not_allow_writes(sales_db, make_connection):
    make_connection(url=f"sqlite:///{sales_db}")
    with pytest.raises(PermanentStepError, match="does not allow writes"):
        run_step("sql.execute", {"connection": "sales-db", "sql": "UPDATE orders SET amount = 0"})
    assert _amounts(sales_db) == [10.5, 20.0, 5.0]


def test_execute_writes_when_the_connection_allows_it(sales_db, make_connection):
    make_connection(url=f"sqlite:///{sales_db}", allow_writes=True)
    output, ctx = run_step("sql.execute", {"connection": "sales-db",
                                           "sql": "UPDATE orders SET amount = 0 WHERE region = ?",
                                           "params": ["north"]})
    assert output["row_count"] == 2 and ctx.metrics["records_out"] == 2
    assert _amounts(sales_db) == [0, 20.0, 0]


def test_unknown_connection_and_wrong_kind_say_what_to_do(make_connection):
    with pytest.raises(PermanentStepError, match="no connection named 'nope'.*platform admin"):
        run_step("sql.query", {"connection": "nope", "sql": "SELECT 1"})
    make_connection("api", kind="http", url="https://api.example.com")
    with pytest.raises(PermanentStepError, match="is a http connection"):
        run_step("sql.query", {"connection": "api", "sql": "SELECT 1"})


def test_syntax_error_is_permanent(sales_db, make_connection):
    make_connection(url=f"sqlite:///{sales_db}")
    with pytest.raises(PermanentStepError, match="syntax error"):
        run_step("sql.query", {"connection": "sales-db", "sql": "SELEKT 1"})


@pytest.fixture
def postgres_db():
    """A scratch PostgreSQL database on 127.0.0.1 with the orders table; skipped without a server."""
    name = f"fd_catalog_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(url) as db:
        db.execute("CREATE TABLE orders (id int PRIMARY KEY, region text, amount numeric(10,2))")
        db.execute("INSERT INTO orders VALUES (1, 'north', 10.50), (2, 'south', 20), (3, 'north', 5)")
    yield url
    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


def test_postgres_query_reads_and_refuses_writes(postgres_db, make_connection):
    make_connection(url=postgres_db, allow_writes=True)
    output, _ = run_step("sql.query", {"connection": "sales-db",
                                       "sql": "SELECT id, amount FROM orders WHERE region = %s ORDER BY id",
                                       "params": ["north"]})
    assert output["rows"] == [[1, 10.5], [3, 5]] and output["row_count"] == 2
    for escape in ("UPDATE orders SET amount = 0", "COMMIT; UPDATE orders SET amount = 0",
                   "WITH gone AS (DELETE FROM orders RETURNING id) SELECT * FROM gone"):
        with pytest.raises(PermanentStepError, match="read-only"):
            run_step("sql.query", {"connection": "sales-db", "sql": escape})
    with psycopg.connect(postgres_db) as db:
        assert db.execute("SELECT sum(amount) FROM orders").fetchone()[0] == 35.5


def test_postgres_execute_writes_when_allowed(postgres_db, make_connection):
    make_connection(url=postgres_db, allow_writes=True)
    output, _ = run_step("sql.execute", {"connection": "sales-db",
                                         "sql": "UPDATE orders SET amount = 0 WHERE region = %(region)s",
                                         "params": {"region": "north"}})
    assert output["row_count"] == 2
    with psycopg.connect(postgres_db) as db:
        assert db.execute("SELECT sum(amount) FROM orders").fetchone()[0] == 20
