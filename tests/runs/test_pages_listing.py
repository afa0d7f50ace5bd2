"""The listing filters and tags the long pages use give the same text as Django's own."""

from django.template import engines
from django.urls import clear_script_prefix, reverse, set_script_prefix

from apps.runs.models import Run, RunState, Trigger


def _render(source: str, **context) -> str:
    return engines["django"].from_string("{% load listing %}" + source).render(context)


def test_key_url_is_the_reversed_url_for_ids_and_step_ids():
    assert _render("{% key_url 'runs:detail' 123 %}") == reverse("runs:detail", args=[123])
    assert _render("{% key_url 'runs:step' 7 'load-ledger_2' %}") == reverse("runs:step", args=[7, "load-ledger_2"])
    assert _render("{% key_url 'approvals:detail' 9 as url %}[{{ url }}]") == f"[{reverse('approvals:detail', args=[9])}]"


def test_key_url_quotes_what_needs_it_as_reverse_does():
    assert _render("{% key_url 'runs:step' 7 'a b' %}") == reverse("runs:step", args=[7, "a b"]) == "/runs/7/steps/a%20b/"


def test_key_url_follows_the_script_prefix():
    set_script_prefix("/console/")
    try:
        assert _render("{% key_url 'runs:detail' 5 %}") == "/console/runs/5/"
    finally:
        clear_script_prefix()
    assert _render("{% key_url 'runs:detail' 5 %}") == "/runs/5/"


def test_label_is_the_choice_label_and_options_escape_their_text():
    run = Run(state=RunState.PAUSED, trigger=Trigger.FILE)
    assert _render('{{ run|label:"state" }} / {{ run|label:"trigger" }}', run=run) == \
        f"{run.get_state_display()} / {run.get_trigger_display()}"
    html = _render("{{ choices|options }}", choices=[("1", "a/<b>", False), ("2", "c&d", True)])
    assert html == '<option value="1">a/&lt;b&gt;</option><option value="2" selected>c&amp;d</option>'
