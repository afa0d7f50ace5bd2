"""Reading YAML: hostile documents are refused quickly and every problem is located."""

import time

import pytest

from apps.workflows.spec import load_spec
from tests.workflows.conftest import spec_text

pytestmark = pytest.mark.django_db


def only_error(text: str):
    result = load_spec(text)
    assert not result.ok
    assert len(result.errors) == 1, result.errors
    return result.errors[0]


def refused_within_a_second(text: str):
    started = time.monotonic()
    error = only_error(text)
    assert time.monotonic() - started < 1.0
    return error


def test_billion_laughs_alias_bomb_is_refused_at_the_first_alias():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [" + ",".join([f"*{previous}"] * 9) + "]")
    error = refused_within_a_second("\n".join(lines))
    assert "aliases" in error.message
    assert (error.line, error.column) == (2, 8)


def test_ten_megabyte_document_is_refused_by_size():
    error = refused_within_a_second("name: big\ndescription: " + "x" * (10 * 1024 * 1024))
    assert "the limit is" in error.message
    assert error.line == 1


def test_hundred_deep_nesting_is_refused_with_its_line():
    text = "name: deep\nsteps:\n" + "".join("  " * depth + f"k{depth}:\n" for depth in range(1, 101)) + "  " * 101 + "x: 1\n"
    error = refused_within_a_second(text)
    assert "nested more than 20 levels" in error.message
    assert error.line == 22  # where the 21st level starts


def test_too_many_values_are_refused(settings):
    settings.FLOWDECK_SPEC_MAX_NODES = 100
    error = only_error("name: many\nitems: [" + ", ".join(["1"] * 200) + "]")
    assert "more than 100 values" in error.message


def test_duplicate_key_is_an_error_at_the_second_one():
    error = only_error(spec_text("""
        name: twice
        steps:
          - id: a
            type: test.spec_echo
            type: test.spec_sleep
    """))
    assert (error.line, error.column, error.path) == (5, 5, "steps[0].type")
    assert "written twice" in error.message and "line 4" in error.message


def test_boolean_looking_key_is_refused_with_a_quoting_hint():
    error = only_error("name: x\non: push\nsteps: []\n")
    assert error.line == 2
    assert "true/false" in error.message
    assert 'quotes' in error.hint


def test_python_tags_are_refused_before_building_anything():
    error = only_error("name: !!python/object/apply:os.system ['echo pwned']\nsteps: []\n")
    assert "tag" in error.message and error.line == 1


def test_merge_keys_are_refused():
    error = only_error("name: x\nsteps:\n  - <<: {id: a}\n    type: test.spec_echo\n")
    assert "merge keys" in error.message
    assert error.line == 3


def test_broken_yaml_names_its_line():
    error = only_error("name: x\nsteps:\n  - id: a\n   type: test.spec_echo\n")
    assert error.line == 4
    assert "not valid YAML" in error.message


def test_empty_text_says_how_to_start():
    error = only_error("")
    assert "empty" in error.message and "name:" in error.hint


def test_a_list_at_the_top_is_refused():
    assert "mapping" in only_error("- a\n- b\n").message
