"""Data as people read it, on the run, step and workflow pages.

- `{{ seconds|duration }}` and `{{ attempt.duration_ms|duration_ms }}`: "850 ms", "2.5 s", "25 s",
  "4 min 12 s", "3 h 5 min", "2 d 4 h".
- `{% json_tree value %}`: a JSON value as nested `<details>` (objects and lists fold, no script
  needed), with the value as JSON text to copy underneath.
- `{{ value|json_value }}`: a value inside a line of text (a log line's fields), JSON unless a string.
- `{{ line.message|scrubbed }}`: server paths named by their root (apps/paths.py).
"""

from __future__ import annotations

import json
from datetime import timedelta

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

from apps.paths import scrub

register = template.Library()

# Levels deeper than this start folded; lists and objects longer than this show their first items.
OPEN_DEPTH = 2
ITEMS_SHOWN = 100


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(float(seconds), 0.0)
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    for big, big_unit, small, small_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "min"), (60, "min", 1, "s")):
        if whole >= big:
            rest = (whole % big) // small
            return f"{whole // big} {big_unit}" + (f" {rest} {small_unit}" if rest else "")
    return f"{whole} s"


@register.filter
def duration(value) -> str:
    """Seconds (a number or a timedelta) in human units."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    return human_duration(value)


@register.filter
def duration_ms(value) -> str:
    return human_duration(None if value is None else value / 1000)


def _scalar(value) -> str:
    kind = {str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")
    return f'<span class="json-{kind}">{escape(json.dumps(value, ensure_ascii=False))}</span>'


def _size(value) -> str:
    count = len(value)
    if isinstance(value, dict):
        return f"{{{count} key{'s' if count != 1 else ''}}}"
    return f"[{count} item{'s' if count != 1 else ''}]"


def _node(value, depth: int, key_html: str) -> str:
    if not isinstance(value, (dict, list)) or not value:
        text = ("{}" if isinstance(value, dict) else "[]") if isinstance(value, (dict, list)) else _scalar(value)
        return f"<li>{key_html}{text}</li>"
    items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
    children = "".join(
        _node(child, depth + 1, f'<span class="json-key">{escape(str(key))}</span>: ')
        for key, child in items[:ITEMS_SHOWN])
    if len(items) > ITEMS_SHOWN:
        children += f'<li class="muted">… {len(items) - ITEMS_SHOWN} more (see the JSON text)</li>'
    opened = " open" if depth < OPEN_DEPTH else ""
    return (f'<li><details{opened}><summary>{key_html}<span class="muted">{_size(value)}</span></summary>'
            f"<ul>{children}</ul></details></li>")


@register.simple_tag
def json_tree(value, label: str = "") -> str:
    """`value` as a foldable tree; `label` names it for screen readers ("Inputs of run 12"). Paths
    under the server's roots (a parameter naming a file) are shown relative to them."""
    # Scrubbed once as text (a root's path reads the same inside a JSON string), then shown.
    text = scrub(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str))
    value = json.loads(text)
    aria = f' aria-label="{escape(label)}"' if label else ""
    return mark_safe(f'<div class="json-view" role="group"{aria}><ul class="json-tree">{_node(value, 0, "")}</ul>'
                     f'<details class="json-text"><summary>JSON text</summary><pre>{escape(text)}</pre>'
                     "</details></div>")


@register.filter
def json_value(value) -> str:
    """A field's value in a line of text: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


@register.filter
def scrubbed(text) -> str:
    return scrub(str(text))
