"""Stand-in step types and small specs shared by the workflows tests.

The stand-ins are named "test.spec_*", apart from the engine's own "test.*" types. They give
these tests parameter schemas of their own, so the tests do not change when the built-ins do.
"""

import textwrap

import pytest

from apps.catalog.registry import get_step_type, step_type


def _register(name: str, params_schema: dict) -> None:
    if get_step_type(name) is None:
        step_type(name, params_schema=params_schema, summary=f"stand-in {name}")(lambda ctx: ctx.params)


_register("test.spec_echo", {"type": "object"})
_register("test.spec_sleep", {"type": "object", "additionalProperties": False, "required": ["seconds"],
                         "properties": {"seconds": {"type": "integer", "minimum": 0}}})
_register("test.spec_http", {"type": "object", "additionalProperties": False, "required": ["url"],
                        "properties": {"method": {"enum": ["GET", "POST", "DELETE"]}, "url": {"type": "string"},
                                       "json": {}, "timeout": {"type": "number", "maximum": 300}}})


def spec_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


SIMPLE_SPEC = spec_text("""
    name: month-end
    description: Closes the month.
    inputs:
      period: {type: string}
    steps:
      - id: extract
        type: test.spec_echo
        with: {message: "period {{ inputs.period }}"}
      - id: load
        type: test.spec_sleep
        needs: extract
        with: {seconds: 1}
""")


@pytest.fixture
def simple_spec() -> str:
    return SIMPLE_SPEC


@pytest.fixture
def saved_workflow(author, team, simple_spec):
    """Workflow "month-end" of team billing, at version 1, saved by the author."""
    from apps.workflows.services import save_version

    return save_version(author, team=team, source=simple_spec, message="first").workflow
