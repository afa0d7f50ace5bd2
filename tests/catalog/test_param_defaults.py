"""A step type's schema defaults are filled in once, by `checked_params`, so a step type's code
reads `params["chunk_size"]` and never repeats a default of its own."""

from types import SimpleNamespace

import pytest

from apps.catalog.registry import PermanentStepError, checked_params, get_step_type, with_defaults


def test_checked_params_fill_the_schema_defaults_and_keep_what_was_given():
    ctx = SimpleNamespace(params={"source": {"file": "in.csv"}, "function": "upper", "chunk_size": 7})
    params = checked_params(ctx, "batch.map")
    assert params["chunk_size"] == 7
    assert (params["chunk_retries"], params["chunk_queue"], params["max_records"], params["options"],
            params["max_rejected"]) == (2, "steps", 50_000_000, {}, None)
    assert ctx.params == {"source": {"file": "in.csv"}, "function": "upper", "chunk_size": 7}


def test_parameters_that_break_the_schema_are_refused_before_defaults():
    with pytest.raises(PermanentStepError, match="chunk_size"):
        checked_params(SimpleNamespace(params={"source": {"file": "in.csv"}, "function": "f", "chunk_size": 0}),
                       "batch.map")


def test_with_defaults_only_fills_top_level_properties_that_declare_one():
    assert with_defaults(get_step_type("batch.map"), {"function": "f"})["function"] == "f"
    assert "source" not in with_defaults(get_step_type("batch.map"), {})


def test_a_step_changing_a_filled_in_default_does_not_change_the_schema():
    params = checked_params(SimpleNamespace(params={"source": {"file": "in.csv"}, "function": "f"}), "batch.map")
    params["options"]["mutated"] = True
    assert get_step_type("batch.map").params_schema["properties"]["options"]["default"] == {}
