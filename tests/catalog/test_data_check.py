"""data.check: a quality gate over CSV, JSON Lines or a query; any failed check fails permanently."""

import json

import pytest

from apps.catalog.registry import PermanentStepError, StepError

from .fakes import run_step

pytestmark = pytest.mark.django_db

INVOICES = """invoice_id,email,amount
1,a@example.com,10
2,,20
3,c@example.com,30
4,d@example.com,40
"""


@pytest.fixture
def data_root(tmp_path, settings):
    settings.FLOWDECK_DATA_ROOT = tmp_path / "data"
    (tmp_path / "data" / "exports").mkdir(parents=True)
    (tmp_path / "data" / "exports" / "invoices.csv").write_text(INVOICES)
    return tmp_path / "data"


PASSING_CHECKS = {"min_rows": 4, "max_rows": 4, "max_null_ratio": {"email": 0.25, "invoice_id": 0},
                  "unique": ["invoice_id", ["email", "amount"]], "range": {"amount": {"min": 10, "max": 40}}}


def test_passing_checks_report_every_result_and_count_rows(data_root):
    output, ctx = run_step("data.check", {"source": {"file": "exports/invoices.csv"}, "checks": PASSING_CHECKS})
    assert output["rows"] == 4
    assert [r["check"] for r in output["results"]] == [
        "min_rows", "max_rows", "max_null_ratio(email)", "max_null_ratio(invoice_id)",
        "unique(invoice_id)", "unique(email, amount)", "range(amount)"]
    assert all(r["passed"] for r in output["results"])
    assert output["results"][2]["observed"] == 0.25
    assert ctx.metrics["records_in"] == 4
    assert ctx.datasets == [("in", (data_root / "exports" / "invoices.csv").as_uri())]


@pytest.mark.parametrize("checks, failed_check", [
    ({"min_rows": 5}, "min_rows observed 4, expected >= 5"),
    ({"max_rows": 3}, "max_rows observed 4, expected <= 3"),
    ({"max_null_ratio": {"email": 0.1}}, "max_null_ratio(email) observed 0.25, expected <= 0.1"),
    ({"range": {"amount": {"min": 15}}}, "range(amount) observed"),
    ({"unique": ["customer"]}, "unique(customer) observed \"no such column: customer\""),
])
def test_each_failing_check_fails_permanently_naming_it(data_root, checks, failed_check):
    with pytest.raises(PermanentStepError, match="1 of 1 data checks failed") as failure:
        run_step("data.check", {"source": {"file": "exports/invoices.csv"}, "checks": checks})
    assert failed_check in str(failure.value)


def test_duplicates_are_counted(data_root):
    (data_root / "dupes.csv").write_text("id\n1\n2\n2\n2\n")
    with pytest.raises(PermanentStepError, match="unique\\(id\\) observed \"2 duplicates\""):
        run_step("data.check", {"source": {"file": "dupes.csv"}, "checks": {"unique": ["id"]}})


def test_every_failed_check_is_listed(data_root):
    with pytest.raises(PermanentStepError) as failure:
        run_step("data.check", {"source": {"file": "exports/invoices.csv"},
                                "checks": {"min_rows": 10, "max_null_ratio": {"email": 0}, "unique": ["invoice_id"]}})
    message = str(failure.value)
    assert message.startswith("2 of 3 data checks failed")
    assert "min_rows" in message and "max_null_ratio(email)" in message and "unique(invoice_id)" not in message


def test_jsonl_nulls_and_non_numbers_are_judged(data_root):
    lines = [{"id": 1, "score": 0.5}, {"id": 2, "score": None}, {"id": 3, "score": "high"}]
    (data_root / "scores.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    with pytest.raises(PermanentStepError) as failure:
        run_step("data.check", {"source": {"file": "scores.jsonl"},
                                "checks": {"max_null_ratio": {"score": 0.5}, "range": {"score": {"min": 0, "max": 1}}}})
    assert "range(score)" in str(failure.value) and '"not_numeric": 1' in str(failure.value)
    assert "max_null_ratio" not in str(failure.value)


@pytest.mark.parametrize("path", ["../secrets.csv", "/etc/passwd.csv", "exports/../../outside.csv"])
def test_paths_outside_the_data_folder_are_refused(data_root, path):
    (data_root.parent / "outside.csv").write_text("id\n1\n")
    with pytest.raises(PermanentStepError, match="outside the data folder"):
        run_step("data.check", {"source": {"file": path}, "checks": {"min_rows": 1}})


def test_a_missing_file_is_retryable(data_root):
    with pytest.raises(StepError, match="does not exist") as failure:
        run_step("data.check", {"source": {"file": "late.csv"}, "checks": {"min_rows": 1}})
    assert not failure.value.permanent


def test_query_source_is_checked(data_root, sales_db, make_connection):
    make_connection(url=f"sqlite:///{sales_db}")
    output, ctx = run_step("data.check", {
        "source": {"connection": "sales-db", "sql": "SELECT id, region, amount FROM orders"},
        "checks": {"min_rows": 3, "unique": ["id"], "range": {"amount": {"min": 0}}}})
    assert output["rows"] == 3 and all(r["passed"] for r in output["results"])
    assert ctx.metrics["records_in"] == 3
