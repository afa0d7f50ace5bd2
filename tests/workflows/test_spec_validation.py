"""Checking a spec: every kind of error names its line and field; valid specs normalize."""

import textwrap

import pytest

from apps.workflows.spec import load_spec, validate_inputs
from tests.workflows.conftest import SIMPLE_SPEC, spec_text

pytestmark = pytest.mark.django_db


def errors_of(text: str) -> dict[str, object]:
    result = load_spec(spec_text(text))
    assert not result.ok
    return {error.path: error for error in result.errors}


def one_step(step_yaml: str) -> str:
    """A spec with inputs `period` and `amount`, an upstream step `first`, and the given step."""
    return spec_text("""
        name: checks
        inputs:
          period: {type: string}
          amount: {type: number, default: 0}
    """) + "steps:\n  - id: first\n    type: test.spec_echo\n" + textwrap.indent(spec_text(step_yaml), "  ")


# --- Shape (JSON Schema) --------------------------------------------------------------------

def test_unknown_field_is_located_at_its_key_with_a_suggestion():
    error = errors_of(one_step("""
          - id: second
            type: test.spec_echo
            retires: 3
    """))["steps[1].retires"]
    assert (error.line, error.column) == (10, 5)
    assert "`retires` is not a field here" == error.message
    assert "`retries`" in error.hint


def test_missing_required_field_is_reported_on_its_parent():
    error = errors_of("""
        name: no-type
        steps:
          - id: a
    """)["steps[0]"]
    assert error.line == 3 and "`type` is missing" in error.message


def test_negative_retry_count_names_the_exact_field():
    error = errors_of(one_step("""
          - id: second
            type: test.spec_echo
            retries:
              count: -1
    """))["steps[1].retries.count"]
    assert (error.line, error.column) == (11, 14)
    assert "at least 0" in error.message


def test_bad_duration_says_how_to_write_one():
    error = errors_of(one_step("""
          - id: second
            type: test.spec_echo
            timeout: 5 minutes
    """))["steps[1].timeout"]
    assert error.line == 10 and '"5m"' in error.hint


def test_step_id_with_capitals_is_refused():
    error = errors_of(one_step("""
          - id: Second
            type: test.spec_echo
    """))["steps[1].id"]
    assert error.line == 8 and "not a valid step id" in error.message


def test_unknown_on_failure_lists_the_choices():
    error = errors_of(one_step("""
          - id: second
            type: test.spec_echo
            on_failure: retry
    """))["steps[1].on_failure"]
    assert "fail, continue, pause" in error.message


def test_trigger_with_two_kinds_is_refused():
    error = errors_of(SIMPLE_SPEC + spec_text("""
        triggers:
          - webhook: {}
            file: {path: in/x.csv}
    """))["triggers[0]"]
    assert error.line == 14 and "exactly one kind" in error.message


def test_trigger_shapes_are_checked():
    errors = errors_of(SIMPLE_SPEC + spec_text("""
        triggers:
          - schedule: {cron: "0 2 * * *", catch_up: always}
          - queue: {queue: invoices}
          - after: {workflow: other, status: done}
    """))
    assert errors["triggers[0].schedule.catch_up"].line == 14
    assert "`connection` is missing" in errors["triggers[1].queue"].message
    assert "succeeded, failed, finished" in errors["triggers[2].after.status"].message


def test_quorum_below_one_is_refused(approver_group):
    error = errors_of(one_step("""
          - id: second
            type: test.spec_echo
            approval: {group: billing-approvers, quorum: 0}
    """))["steps[1].approval.quorum"]
    assert error.line == 10 and "at least 1" in error.message


# --- Meaning --------------------------------------------------------------------------------

def test_duplicate_step_id_points_at_the_second():
    error = errors_of(one_step("""
          - id: first
            type: test.spec_echo
    """))["steps[1].id"]
    assert error.line == 8 and "already used by steps[0]" in error.message


def test_unknown_need_is_named_with_a_suggestion():
    error = errors_of(one_step("""
          - id: second
            type: test.spec_echo
            needs: [firts]
    """))["steps[1].needs[0]"]
    assert (error.line, error.column) == (10, 13)
    assert "`firts` is not a step" in error.message and "`first`" in error.hint


def test_cycle_is_named_in_order():
    errors = errors_of("""
        name: loop
        steps:
          - id: a
            type: test.spec_echo
            needs: c
          - id: b
            type: test.spec_echo
            needs: a
          - id: c
            type: test.spec_echo
            needs: b
    """)
    error = errors["steps[0].needs"]
    assert error.message == "these steps need each other in a circle: a -> c -> b -> a"
    assert error.line == 5


def test_unknown_step_type_suggests_close_names():
    error = errors_of(one_step("""
          - id: second
            type: test.spec_slep
    """))["steps[1].type"]
    assert error.line == 9 and "no step type `test.spec_slep`" in error.message
    assert "`test.spec_sleep`" in error.hint


def test_parameters_are_checked_against_the_step_type():
    errors = errors_of(one_step("""
          - id: second
            type: test.spec_sleep
            with:
              seconds: many
              color: blue
    """))
    assert errors["steps[1].with.seconds"].line == 11
    assert "whole number" in errors["steps[1].with.seconds"].message
    assert errors["steps[1].with.color"].line == 12


def test_missing_required_parameter_is_reported():
    error = errors_of(one_step("""
          - id: second
            type: test.spec_sleep
    """))["steps[1].with"]
    assert "`seconds` is missing" in error.message


def test_templated_values_stand_in_for_any_type():
    result = load_spec(one_step("""
          - id: second
            type: test.spec_sleep
            needs: first
            with: {seconds: "{{ steps.first.output.wait }}"}
    """))
    assert result.ok, result.errors


def test_template_reading_an_undeclared_input_is_refused():
    error = errors_of(one_step("""
          - id: second
            type: test.spec_echo
            with: {message: "{{ inputs.perod }}"}
    """))["steps[1].with.message"]
    assert error.line == 10 and "`inputs.perod` is not a declared input" in error.message
    assert "`period`" in error.hint


def test_template_reading_a_step_that_is_not_upstream_is_refused():
    errors = errors_of(one_step("""
          - id: second
            type: test.spec_echo
            with: {total: "{{ steps.first.output.total }}"}
    """))
    assert "has not run yet" in errors["steps[1].with.total"].message
    assert "needs" in errors["steps[1].with.total"].hint


def test_template_reading_an_upstream_of_an_upstream_is_allowed():
    result = load_spec(one_step("""
          - id: second
            type: test.spec_echo
            needs: first
          - id: third
            type: test.spec_echo
            needs: second
            when: steps.first.output.ok and inputs.amount > 10 and run.id
    """))
    assert result.ok, result.errors


def test_template_syntax_error_is_located():
    error = errors_of(one_step("""
          - id: second
            type: test.spec_echo
            with: {message: "{{ inputs.period "}
    """))["steps[1].with.message"]
    assert error.line == 10 and "cannot read this template" in error.message


def test_unknown_name_in_a_condition_is_refused():
    error = errors_of(one_step("""
          - id: second
            type: test.spec_echo
            when: secrets.token == 1
    """))["steps[1].when"]
    assert "`secrets` is not something a template can read" in error.message


def test_condition_written_as_a_template_says_to_drop_the_braces():
    error = errors_of(one_step("""
          - id: second
            type: test.spec_echo
            when: "{{ inputs.amount > 1 }}"
    """))["steps[1].when"]
    assert "Remove the {{" in error.hint


def test_compensation_type_and_params_are_checked():
    errors = errors_of(one_step("""
          - id: second
            type: test.spec_echo
            compensate:
              type: test.spec_sleep
              with: {seconds: -5}
          - id: third
            type: test.spec_echo
            compensate: {type: test.nope}
    """))
    assert errors["steps[1].compensate.with.seconds"].line == 12
    assert errors["steps[2].compensate.type"].line == 15


def test_compensation_may_read_its_own_steps_output():
    result = load_spec(one_step("""
          - id: second
            type: test.spec_echo
            compensate:
              type: test.spec_http
              with: {method: DELETE, url: "https://x.example/{{ steps.second.output.id }}"}
    """))
    assert result.ok, result.errors


def test_bad_cron_and_time_zone_are_refused():
    errors = errors_of(SIMPLE_SPEC + spec_text("""
        triggers:
          - schedule:
              cron: "61 * * * *"
              timezone: Europe/Pariss
    """))
    assert errors["triggers[0].schedule.cron"].line == 15
    assert errors["triggers[0].schedule.timezone"].line == 16
    assert "Europe/Paris" in errors["triggers[0].schedule.timezone"].hint


def test_unknown_calendar_and_rule_are_refused_and_the_seeded_one_accepted():
    errors = errors_of(SIMPLE_SPEC + spec_text("""
        triggers:
          - schedule: {cron: "0 6 * * *", calendar: uk-bankng}
          - schedule: {cron: "0 6 * * *", calendar: "uk-banking:every_other_day"}
    """))
    assert "no business calendar `uk-bankng`" in errors["triggers[0].schedule.calendar"].message
    assert "uk-banking" in errors["triggers[0].schedule.calendar"].hint
    assert "not a calendar rule" in errors["triggers[1].schedule.calendar"].message
    assert load_spec(SIMPLE_SPEC + spec_text("""
        triggers:
          - schedule: {cron: "0 6 * * *", calendar: "uk-banking:last_business_day"}
    """)).ok


def test_file_trigger_paths_must_stay_in_the_landing_folder():
    errors = errors_of(SIMPLE_SPEC + spec_text("""
        triggers:
          - file: {path: "../../etc/*.conf"}
          - file: {path: "usage/*.csv", marker: "/tmp/READY"}
    """))
    assert "leaves the landing folder" in errors["triggers[0].file.path"].message
    assert "triggers[1].file.marker" in errors


def test_batch_limits_are_normalized_to_a_count_and_seconds():
    result = load_spec(SIMPLE_SPEC + spec_text("""
        triggers:
          - webhook:
              batch: {max_items: 50, max_wait: 10m}
          - queue:
              connection: events
              queue: invoices
              batch: {max_wait: 30s}
    """))
    assert result.ok, result.errors
    assert result.spec["triggers"] == [
        {"webhook": {"batch": {"max_items": 50, "max_wait": 600}}},
        {"queue": {"connection": "events", "queue": "invoices", "batch": {"max_items": None, "max_wait": 30}}},
    ]


def test_old_batch_field_names_are_refused_with_their_new_names():
    errors = errors_of(SIMPLE_SPEC + spec_text("""
        triggers:
          - webhook:
              batch: {size: 20, window: 10m}
    """))
    assert errors["triggers[0].webhook.batch.size"].message == "`size` is not a field here"
    assert "`max_items`" in errors["triggers[0].webhook.batch.size"].hint
    assert "`max_wait`" in errors["triggers[0].webhook.batch.window"].hint


def test_batch_that_waits_zero_seconds_is_refused():
    errors = errors_of(SIMPLE_SPEC + spec_text("""
        triggers:
          - queue: {connection: events, queue: invoices, batch: {max_items: 10, max_wait: 0s}}
    """))
    assert "cannot wait 0 seconds" in errors["triggers[0].queue.batch.max_wait"].message


def test_unknown_approver_group_is_refused():
    error = errors_of(one_step("""
          - id: second
            type: test.spec_echo
            approval: {group: nobody}
    """))["steps[1].approval.group"]
    assert error.line == 10 and "no approver group `nobody`" in error.message


def test_quorum_larger_than_the_group_is_refused(approver_group):
    error = errors_of(one_step("""
          - id: second
            type: test.spec_echo
            approval: {group: billing-approvers, quorum: 3}
    """))["steps[1].approval.group"]
    assert "has 2 members" in error.message


def test_input_default_of_the_wrong_type_is_refused():
    error = errors_of("""
        name: typed
        inputs:
          limit: {type: integer, default: lots}
        steps:
          - id: a
            type: test.spec_echo
    """)["inputs.limit.default"]
    assert error.line == 3 and "whole number" in error.message


def test_every_error_is_reported_at_once():
    result = load_spec(spec_text("""
        name: Many Errors
        steps:
          - id: a
            type: test.nope
            needs: [ghost]
            timeout: soon
          - id: a
            type: test.spec_echo
            with: {message: "{{ inputs.missing }}"}
        triggers:
          - schedule: {cron: "not cron"}
    """))
    assert [(e.line, e.path) for e in result.errors] == [
        (1, "name"), (4, "steps[0].type"), (5, "steps[0].needs[0]"), (6, "steps[0].timeout"),
        (7, "steps[1].id"), (9, "steps[1].with.message"), (11, "triggers[0].schedule.cron"),
    ]


# --- The normalized form ----------------------------------------------------------------------

def test_valid_spec_is_normalized_with_defaults_merged(approver_group):
    result = load_spec(spec_text("""
        name: normalized
        inputs:
          period: {type: string}
          dry_run: {type: boolean, default: false}
        triggers:
          - schedule: {cron: "0 2 * * *", timezone: Europe/Paris}
          - webhook:
        defaults:
          retries: {count: 2, delay: 1m}
          timeout: 10m
        steps:
          - id: a
            type: test.spec_echo
          - id: b
            type: test.spec_http
            needs: a
            retries: 5
            on_failure: pause
            approval: billing-approvers
            with: {url: "https://x.example"}
            compensate: {type: test.spec_echo}
    """))
    assert result.ok, result.errors
    spec = result.spec
    assert spec["inputs"]["period"] == {"type": "string", "required": True, "default": None, "description": ""}
    assert spec["inputs"]["dry_run"]["required"] is False
    assert spec["triggers"] == [
        {"schedule": {"cron": "0 2 * * *", "timezone": "Europe/Paris", "calendar": None, "catch_up": "skip"}},
        {"webhook": {"batch": None}},
    ]
    first, second = spec["steps"]
    assert first["retries"] == {"count": 2, "backoff": "fixed", "delay": 60, "max_delay": 300, "jitter": True}
    assert first["timeout"] == 600 and first["on_failure"] == "fail" and first["needs"] == []
    assert second["retries"]["count"] == 5 and second["retries"]["delay"] == 60
    assert second["needs"] == ["a"] and second["on_failure"] == "pause"
    assert second["approval"] == {"group": "billing-approvers", "quorum": 1, "timeout": None,
                                  "escalate_to": None, "on_expiry": "reject"}
    assert second["compensate"] == {"type": "test.spec_echo", "with": {}}


# --- Run inputs -----------------------------------------------------------------------------

def test_run_inputs_fill_defaults_and_refuse_wrong_types_and_unknown_keys():
    spec = load_spec(spec_text("""
        name: inputs
        inputs:
          period: {type: string}
          limit: {type: integer, default: 10}
          mode: {type: string, enum: [full, delta], default: delta}
        steps:
          - id: a
            type: test.spec_echo
    """)).spec
    values, errors = validate_inputs(spec, {"period": "2026-11"})
    assert values == {"period": "2026-11", "limit": 10, "mode": "delta"} and errors == []

    _, errors = validate_inputs(spec, {"limit": True, "mode": "weekly", "colour": "red"})
    messages = {e.path: e.message for e in errors}
    assert messages == {
        "inputs.colour": "`colour` is not an input of this workflow",
        "inputs.period": "`period` is required",
        "inputs.limit": "`limit` must be a whole number, not true/false",
        "inputs.mode": "`mode` must be one of: full, delta",
    }
