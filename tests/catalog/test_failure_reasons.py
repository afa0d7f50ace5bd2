"""Failures Flowdeck's own step machinery understands carry a machine-readable reason and what
its fix needs (the assistant shows them as known causes, tests/knowledge/test_known_causes.py)."""

import pytest
from cryptography.fernet import Fernet

from apps.catalog.registry import Reason, StepError

from .fakes import run_step

pytestmark = pytest.mark.django_db


def failure_of(type_name: str, params: dict) -> StepError:
    with pytest.raises(StepError) as failure:
        run_step(type_name, params)
    return failure.value


def test_a_missing_connection_names_it(make_connection):
    failure = failure_of("sql.query", {"connection": "warehouse", "sql": "SELECT 1"})
    assert (failure.reason, failure.detail) == (Reason.CONNECTION_MISSING, {"connection": "warehouse"})


def test_a_host_off_the_allow_list_names_the_host():
    failure = failure_of("http.request", {"url": "https://ledger.example.com/v1/exports"})
    assert (failure.reason, failure.detail) == (Reason.HOST_NOT_ALLOWED, {"host": "ledger.example.com"})


def test_parameters_breaking_the_schema_list_the_errors():
    failure = failure_of("http.request", {"method": "GET"})
    assert failure.reason == Reason.INVALID_PARAMETERS and "url" in failure.detail["errors"][0]


def test_a_secret_encrypted_with_another_key_is_unreadable(settings, make_connection, sales_db):
    settings.FLOWDECK_SECRETS_KEY = Fernet.generate_key().decode()
    make_connection("warehouse", url=f"sqlite:///{sales_db}", secret="s3cret")
    settings.FLOWDECK_SECRETS_KEY = Fernet.generate_key().decode()
    failure = failure_of("sql.query", {"connection": "warehouse", "sql": "SELECT 1"})
    assert (failure.reason, failure.detail) == (Reason.SECRET_UNREADABLE, {"connection": "warehouse"})


def test_a_missing_data_file_and_a_failed_quality_gate(tmp_path, settings):
    settings.FLOWDECK_DATA_ROOT = tmp_path
    missing = failure_of("data.check", {"source": {"file": "late.csv"}, "checks": {"min_rows": 1}})
    assert (missing.reason, missing.detail) == (Reason.DATA_FILE_MISSING, {"file": "late.csv"})
    (tmp_path / "orders.csv").write_text("id\n1\n")
    gate = failure_of("data.check", {"source": {"file": "orders.csv"}, "checks": {"min_rows": 5}})
    assert (gate.reason, gate.detail) == (Reason.QUALITY_GATE_FAILED, {"checks": ["min_rows"]})


def test_a_permanent_4xx_answer_keeps_its_status(http_server, allow_local):
    failure = failure_of("http.request", {"url": f"{http_server.url}/status/404"})
    assert failure.permanent and (failure.reason, failure.detail) == (Reason.HTTP_CLIENT_ERROR, {"status": 404})


def test_a_step_types_own_failure_has_no_reason(http_server, allow_local):
    failure = failure_of("http.request", {"url": f"{http_server.url}/status/503"})
    assert failure.reason == "" and failure.detail == {}
