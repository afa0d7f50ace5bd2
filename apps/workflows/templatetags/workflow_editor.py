"""Template tags of the workflow pages: a version's step graph on its detail page, and the
editor's panels (first preview of the YAML, step type catalog, form mode)."""

from django import template

from apps.catalog.registry import all_step_types
from apps.workflows import editor

register = template.Library()


@register.inclusion_tag("workflows/_spec_graph.html")
def workflow_graph(version, link_prefix: str = "step-"):
    """The steps of a saved version, laid out by grandalf; each box links to `#<prefix><id>`."""
    return {"graph": editor.version_graph(version), "link_prefix": link_prefix, "name": version.workflow.name}


@register.inclusion_tag("workflows/_editor_preview.html")
def editor_preview(source: str, workflow=None):
    """The editor's graph and dry run for the YAML the page opens with (later ones come by htmx)."""
    return editor.preview(source or "", workflow)


@register.inclusion_tag("workflows/_catalog_panel.html")
def editor_catalog():
    return {"entries": editor.catalog_entries()}


@register.inclusion_tag("workflows/_step_form.html")
def editor_step_form(source: str = ""):
    """Form mode before a step is chosen (the chosen step's form comes by htmx)."""
    return {"step": None, "step_types": all_step_types(), "step_ids": editor.existing_step_ids(source)}


@register.filter
def get_item(mapping, key):
    """`values|get_item:key`: a form value whose key is built in the template."""
    return mapping.get(key) if mapping else None


@register.filter
def seconds_label(seconds) -> str:
    """12.3 -> "12 s", 95 -> "1 min 35 s", 7300 -> "2 h 1 min"."""
    if seconds is None:
        return "unknown"
    whole = int(round(float(seconds)))
    if whole < 60:
        return f"{whole} s" if whole or not seconds else "under 1 s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
