"""Templates cannot exhaust a process: size, loop and time limits, at validation and at render time."""

import os
import subprocess
import sys
import time
import tracemalloc

import pytest
from django.conf import settings

from apps.runs import engine
from apps.runs.models import RunState, StepState
from apps.workflows.spec import load_spec
from apps.workflows.spec.templating import (
    TemplateEvaluationError,
    evaluate_condition,
    render_params,
)
from tests.runs.factories import make_version, step
from tests.workflows.conftest import spec_text

pytestmark = pytest.mark.django_db

CONTEXT = {"inputs": {"letter": "a", "count": 1000, "rows": list(range(1000))}, "steps": {}, "run": {}}


def spec_with(field_yaml: str) -> str:
    return spec_text("""
        name: limits
        steps:
          - id: greet
            type: test.spec_echo
    """) + "    " + field_yaml + "\n"


def editor_errors(field_yaml: str) -> dict:
    result = load_spec(spec_with(field_yaml))
    assert not result.ok
    return {error.path: error for error in result.errors}


def refusal(template: str, **context) -> str:
    """The error of rendering `template` as the `message` of step `greet`; it must come fast and
    without building anything large."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(TemplateEvaluationError) as caught:
            render_params({"message": template}, {**CONTEXT, **context}, step_id="greet")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"{template!r} built {peak:,} bytes before it was refused"
    assert time.monotonic() - started < settings.FLOWDECK_TEMPLATE_MAX_SECONDS + 1
    return str(caught.value)


# --- Known before anything runs: editor errors on the field -------------------------------------------

def test_a_huge_constant_repetition_is_an_editor_error_on_its_field():
    error = editor_errors("""with: {message: "{{ 'a' * 30000000 }}"}""")["steps[0].with.message"]
    assert error.line == 5
    assert "would build 30,000,000 characters with `*`" in error.message
    assert "FLOWDECK_TEMPLATE_MAX_BYTES" in error.message and "smaller" in error.hint


def test_a_loop_over_ten_million_is_an_editor_error():
    error = editor_errors("""with: {message: "{% for i in range(10**7) %}x{% endfor %}"}""")["steps[0].with.message"]
    assert "`range()` of 10,000,000 numbers" in error.message
    assert "FLOWDECK_TEMPLATE_MAX_LOOP_ITERATIONS" in error.message


def test_constant_nested_loops_are_multiplied_out_at_validation():
    source = "{% for i in range(1000) %}\\n{% for j in range(1000) %}{{ i }}{% endfor %}{% endfor %}"
    error = editor_errors(f'with: {{message: "{source}"}}')["steps[0].with.message"]
    assert "loops 1,000,000 times, over the limit of 100,000" in error.message
    assert "(line 2 of the template)" in error.message


def test_a_huge_constant_in_a_condition_is_an_editor_error_on_when():
    error = editor_errors("""when: "'a' * 30000000 == ''" """)["steps[0].when"]
    assert error.message.startswith("this condition would build 30,000,000 characters")


def test_templates_that_read_the_context_are_left_to_run_time():
    assert load_spec(spec_with("""with: {message: "{{ 'a' * inputs.count }}"}""").replace(
        "name: limits", "name: limits\ninputs:\n  count: {type: integer}")).ok


# --- At render time, always -------------------------------------------------------------------------

def test_a_huge_repetition_is_refused_at_render_before_it_is_built():
    message = refusal("{{ inputs.letter * 30000000 }}")
    assert message.startswith("step `greet`, params.message: the template would build 30,000,000 characters")
    assert "FLOWDECK_TEMPLATE_MAX_BYTES" in message


def test_a_loop_over_ten_million_is_refused_at_render():
    assert "`range()` of 10,000,000 numbers" in refusal("{% for i in range(inputs.count * 10000) %}x{% endfor %}")


def test_nested_loops_count_together():
    message = refusal("{% for i in inputs.rows %}{% for j in inputs.rows %}{% endfor %}{% endfor %}")
    assert "loops more than 100,000 times" in message and "FLOWDECK_TEMPLATE_MAX_LOOP_ITERATIONS" in message


@pytest.mark.parametrize("template", [
    "{{ inputs.count ** 10000000 }}",
    "{{ '%999999999s' % inputs.letter }}",
    "{{ '{:>999999999}'.format(inputs.letter) }}",
    "{{ inputs.letter.ljust(10 ** 9) }}",
    "{{ inputs.letter | center(10 ** 9) }}",
    "{{ (inputs.letter * 1000000) | replace('', 'bb') }}",
    "{{ (inputs.letter * 1000000).replace('', 'bb') }}",
    "{{ [inputs.letter * 100000] * 100 }}",
    "{{ ([inputs.letter * 100000] * 10) | join(inputs.letter * 1000000) }}",
    "{{ inputs.rows | batch(10 ** 9, inputs.letter) | list }}",
    "{{ lipsum(10 ** 6) }}",
    "{{ inputs.rows | tojson(indent=10 ** 6) }}",
    "{{ ((inputs.letter ~ ' ') * 500000) | wordwrap(1, wrapstring=inputs.letter * 100) }}",
    "{% set ns = namespace(x=inputs.letter) %}{% for i in range(40) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}",
    "{% set ns = namespace(x=inputs.letter) %}{% for i in range(40) %}{% set ns.x = ns.x + ns.x %}{% endfor %}",
    "{% for i in inputs.rows %}{{ inputs.letter * 10000 }}{% endfor %}",
    "{% for i in range(5000) %}" + "x" * 1000 + "{% endfor %}{{ inputs.letter }}",
    "{% macro big() %}{% for i in range(5000) %}" + "x" * 1000 + "{% endfor %}{% endmacro %}{{ big() }}",
])
def test_every_amplifier_is_bounded(template):
    assert "FLOWDECK_TEMPLATE_MAX_BYTES" in refusal(template)


@pytest.mark.parametrize("template", [
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(25) }}",
    ("{% for i in inputs.rows %}{% for j in inputs.rows[:99] %}{{ (i * j) | string | center(9) | trim }}"
     "{% endfor %}{% endfor %}"),
])
def test_a_slow_template_stops_at_the_time_limit(settings, template):
    settings.FLOWDECK_TEMPLATE_MAX_SECONDS = 0.05
    started = time.monotonic()
    message = refusal(template)
    assert "took longer than 0.05 s" in message and "FLOWDECK_TEMPLATE_MAX_SECONDS" in message
    assert time.monotonic() - started < 1.5


def test_many_fields_within_the_limit_each_are_limited_together():
    params = {f"field{i}": "{{ inputs.letter * 300000 }}" for i in range(10)}
    with pytest.raises(TemplateEvaluationError, match=r"^params\.field3: the step's templates together build more "
                                                      r"than 1,048,576 characters"):
        render_params(params, CONTEXT)


def test_a_condition_is_bounded_and_named():
    with pytest.raises(TemplateEvaluationError, match=r"^step `greet`, when: the template would build"):
        evaluate_condition("inputs.letter * 30000000 == ''", CONTEXT, step_id="greet")


def test_large_but_legal_templates_render_as_before():
    rows = [{"id": i, "name": f"customer {i}"} for i in range(2000)]
    sql = ("insert into customers (id, name) values\n"
           "{% for row in inputs.rows %}({{ row.id }}, '{{ row.name }}'){{ ',' if not loop.last }}\n{% endfor %}")
    body = "Dear customer,\n" + "The ledger is closed. " * 1500 + "{{ inputs.letter | upper }}"
    rendered = render_params({"sql": sql, "body": body, "ids": "{{ inputs.rows | map(attribute='id') | list }}"},
                             {"inputs": {"rows": rows, "letter": "a"}})
    assert len(rendered["sql"]) > 40_000 and rendered["sql"].count("\n") == 2001
    assert rendered["body"].endswith("closed. A") and len(rendered["body"]) == 33_016
    assert rendered["ids"] == list(range(2000))


def test_the_limits_follow_the_settings(settings):
    assert render_params({"m": "{{ inputs.letter * 3000 }}"}, CONTEXT) == {"m": "a" * 3000}
    settings.FLOWDECK_TEMPLATE_MAX_BYTES = 2048
    assert "over the limit of 2,048" in refusal("{{ inputs.letter * 3000 }}")
    settings.FLOWDECK_TEMPLATE_MAX_LOOP_ITERATIONS = 10
    assert "loops more than 10 times" in refusal("{% for i in inputs.rows %}{% endfor %}")


def test_a_bad_limit_setting_stops_start_up():
    environment = {**os.environ, "FLOWDECK_TEMPLATE_MAX_SECONDS": "soon"}
    completed = subprocess.run([sys.executable, "-c", "import django; django.setup()"], check=False, env=environment,
                               capture_output=True, text=True, timeout=60, cwd=settings.BASE_DIR)
    assert completed.returncode != 0 and "FLOWDECK_TEMPLATE_MAX_SECONDS='soon' is not a number" in completed.stderr


# --- Through the engine -----------------------------------------------------------------------------

def test_a_step_whose_template_goes_over_a_limit_fails_with_the_field_named(team, operator, drive):
    version = make_version(team, [step("greet", params={"message": "{{ inputs.letter * 30000000 }}"})],
                           inputs={"letter": {"type": "string", "required": False, "default": "a", "description": ""}})
    run = drive(engine.start_run(operator, version))
    greet = run.step_runs.get()
    assert run.state == RunState.FAILED and greet.state == StepState.FAILED
    assert greet.error_type == "TemplateError" and greet.output is None
    assert "params.message: the template would build 30,000,000 characters" in greet.error_message
