"""Unit tests of the example step type, with a stand-in for the engine's StepContext: no database,
no worker. tests/catalog/test_step_packages.py runs the same type in a real Flowdeck workflow."""

import pytest

from apps.catalog.registry import PermanentStepError, get_step_type
from flowdeck_example_steps.currency import NAME, convert_amounts


class FakeContext:
    """What a step may call during one attempt, recorded so a test can assert it."""

    def __init__(self, params):
        self.params, self.run_id, self.step_id, self.attempt = params, 1, "convert", 1
        self.idempotency_key = "run-1-convert-1"
        self.beats, self.metrics, self.datasets, self.lines = [], {}, [], []

    def log(self, message, level="info", **fields):
        self.lines.append((level, message, fields))

    def heartbeat(self, progress=None):
        self.beats.append(progress)

    def add_metrics(self, **counts):
        self.metrics.update(counts)

    def record_dataset(self, direction, uri):
        self.datasets.append((direction, uri))


def test_amounts_are_converted_rounded_and_the_unknown_currencies_rejected():
    ctx = FakeContext({"amounts": [{"id": 1, "amount": "10", "currency": "USD"},
                                   {"id": 2, "amount": 5, "currency": "EUR"},
                                   {"id": 3, "amount": "1", "currency": "JPY"}],
                       "rates": {"USD": 0.9245}, "to": "EUR", "dataset": "s3://ledger/2026-11.json"})
    output = convert_amounts(ctx)
    assert output["total"] == "14.24" and output["currency"] == "EUR"
    assert output["converted"][0] == {"id": 1, "amount": "9.24", "currency": "EUR", "from": "USD"}
    assert output["rejected"] == [{"index": 2, "reason": "no rate for JPY"}]
    assert ctx.metrics == {"records_in": 3, "records_out": 2, "records_rejected": 1}
    assert ctx.datasets == [("in", "s3://ledger/2026-11.json")]


def test_progress_is_reported_while_many_amounts_are_converted():
    ctx = FakeContext({"amounts": [{"amount": 1, "currency": "EUR"}] * 250, "rates": {}, "to": "EUR"})
    convert_amounts(ctx)
    assert ctx.beats == [{"records_done": 100, "records_total": 250}, {"records_done": 200, "records_total": 250}]


def test_parameters_that_break_the_schema_fail_permanently_naming_the_parameter():
    with pytest.raises(PermanentStepError, match="to: 'euro' does not match"):
        convert_amounts(FakeContext({"amounts": [], "rates": {}, "to": "euro"}))


def test_the_type_declares_its_contract():
    step = get_step_type(NAME)
    assert (step.risk, step.idempotent, step.package) == ("low", True, "flowdeck-example-steps")
    assert step.output_schema["required"] == ["currency", "total", "converted", "rejected"]
