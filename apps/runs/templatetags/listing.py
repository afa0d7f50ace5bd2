"""Filters for the pages that list many rows (runs, a run's steps and attempts, the inbox, home):
the same text as Django's own, with less work per row.

- `{{ run|label:"state" }}` is `run.get_state_display`: Django rebuilds the choices' mapping on
  every call, which was a tenth of the runs list's rendering; here it is built once per field.
- `{{ choices|options }}` renders (value, label, selected) tuples as `<option>`s: looped in the
  template, a filter with hundreds of workflows cost more than the page's table.
- `{% key_url "runs:step" run.pk row.step_id %}` is `{% url %}` for a link per row whose arguments
  are ids and step ids: the route is reversed once with markers, then filled in (reversing took
  0.1 ms a link, a tenth of a page of 25 rows).
- `{% pagination page %}` is every list's previous/next links (templates/_pagination.html), which
  keep the request's other query parameters (its filters).
"""

import re
from functools import cache

from django import template
from django.urls import get_script_prefix, reverse
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()


@cache
def _labels(model, field_name: str) -> tuple[str, dict]:
    field = model._meta.get_field(field_name)
    return field.attname, dict(field.flatchoices)


@register.filter
def label(obj, field_name: str):
    """The display label of `obj`'s choice field `field_name` (its value when not a choice)."""
    attname, labels = _labels(type(obj), field_name)
    value = getattr(obj, attname)
    return labels.get(value, value)


@register.filter
def options(choices) -> str:
    return mark_safe("".join(
        f'<option value="{escape(value)}"{" selected" if selected else ""}>{escape(text)}</option>'
        for value, text, selected in choices
    ))


# Arguments that read the same in a URL as they are (ids, step ids); anything else is reversed.
PLAIN_ARGUMENT = re.compile(r"[A-Za-z0-9_-]+")
MARKER = "7306192841{}"  # digits, so the markers also fit `<int:...>` routes


@cache
def _route_pieces(name: str, arguments: int, script_prefix: str) -> tuple[str, ...]:
    """The URL of route `name` split around its arguments: ("/runs/", "/steps/", "/")."""
    markers = [MARKER.format(number) for number in range(arguments)]
    url, pieces = reverse(name, args=markers), []
    for marker in markers:
        before, url = url.split(marker, 1)
        pieces.append(before)
    return (*pieces, url)


@register.simple_tag
def key_url(name: str, *arguments) -> str:
    texts = [str(argument) for argument in arguments]
    if not all(PLAIN_ARGUMENT.fullmatch(text) for text in texts):
        return reverse(name, args=arguments)
    pieces = _route_pieces(name, len(texts), get_script_prefix())
    return "".join(piece + text for piece, text in zip(pieces, texts)) + pieces[-1]


@register.inclusion_tag("_pagination.html", takes_context=True)
def pagination(context, page, label: str = "Pages", previous: str = "Previous", next: str = "Next",
               param: str = "page", counted: str = ""):
    """Links to the pages around `page` that keep the request's other parameters; `counted`
    names what the page counts ("incidents" shows "(120 incidents)")."""
    query = context["request"].GET.copy()
    query.pop(param, None)
    return {"page": page, "label": label, "previous": previous, "next": next, "param": param,
            "query": query.urlencode(), "counted": counted}
