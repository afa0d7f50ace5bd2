"""echo, sleep, wait, fail, flaky and approval.gate behave as documented."""

import pytest

from apps.catalog.registry import PermanentStepError, StepError

from .fakes import run_step

pytestmark = pytest.mark.django_db


def test_echo_returns_its_parameters():
    output, _ = run_step("echo", {"period": "2026-10", "n": 3})
    assert output == {"period": "2026-10", "n": 3}


def test_sleep_heartbeats_while_it_waits():
    output, ctx = run_step("sleep", {"seconds": 1.5})
    assert output == {"waited_seconds": 1.5}
    assert len(ctx.heartbeats) == 2 and ctx.heartbeats[-1]["waited_seconds"] == 1.5


def test_wait_over_an_hour_is_refused_as_invalid():
    with pytest.raises(PermanentStepError, match="seconds"):
        run_step("wait", {"seconds": 3601})


def test_fail_is_retryable_unless_permanent():
    with pytest.raises(StepError, match="boom") as retryable:
        run_step("fail", {"message": "boom"})
    assert not retryable.value.permanent
    with pytest.raises(PermanentStepError, match="boom"):
        run_step("fail", {"message": "boom", "permanent": True})


def test_flaky_fails_the_first_attempts_then_succeeds():
    for attempt in (1, 2):
        with pytest.raises(StepError, match="upstream timed out") as failure:
            run_step("flaky", {"fail_times": 2, "message": "upstream timed out"}, attempt=attempt)
        assert not failure.value.permanent
    output, _ = run_step("flaky", {"fail_times": 2}, attempt=3)
    assert output == {"attempt": 3}


def test_approval_gate_only_reports_approval():
    output, _ = run_step("approval.gate", {"message": "Release payments?"})
    assert output == {"approved": True}


def test_unknown_parameter_is_a_permanent_error_naming_it():
    with pytest.raises(PermanentStepError, match="colour"):
        run_step("flaky", {"fail_times": 1, "colour": "red"})
