"""Run history on other apps' pages (apps/runs/history.py computes it):

- `{% history_summaries page.object_list as summaries %}` then `{% run_bars summaries|summary_for:wf.pk %}`:
  a list page's last-run bars, success rate and durations, with one grouped query for the page.
- `{% workflow_history workflow %}`: a workflow page's bars, rates, percentiles and charts.
- `{% chart chart %}`: one chart (a canvas Chart.js draws) with its data as a table.
"""

from django import template
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import mark_safe

from apps.runs import history

register = template.Library()


@register.simple_tag
def history_summaries(workflows) -> dict:
    return history.summaries([workflow.pk for workflow in workflows])


@register.filter
def summary_for(summaries: dict, workflow_id: int):
    return summaries.get(workflow_id)


@register.simple_tag
def run_bars(summary, large: bool = False, label: str = "") -> str:
    """The last runs as bars, oldest first: height by duration, colour by state, each a link to its
    run. Built here rather than looped in a template: a list page draws 500 of them."""
    if summary is None or not summary.bars:
        return mark_safe('<span class="muted">no runs yet</span>')
    first = reverse("runs:detail", args=[0])
    bars = "".join(f'<a role="listitem" href="{first.replace("/0/", f"/{bar.pk}/")}" class="state-{escape(bar.state)}" '
                   f'style="height: {bar.height}%" title="{escape(bar.title)}" aria-label="{escape(bar.title)}"></a>'
                   for bar in summary.bars)
    return mark_safe(f'<span class="run-bars{" large" if large else ""}" role="list" '
                     f'aria-label="{escape(label or "Last runs")}, oldest first">{bars}</span>')


@register.inclusion_tag("runs/_workflow_history.html")
def workflow_history(workflow):
    version = workflow.current_version
    sla = (version.plan.sla or {}).get("max_duration") if version else None
    summary, charts = history.workflow_history(workflow, sla)
    return {"workflow": workflow, "summary": summary, "charts": charts, "stats_runs": history.STATS_RUNS,
            "window_days": history.WINDOW_DAYS, "sla": sla}


@register.inclusion_tag("runs/_chart.html")
def chart(chart):
    return {"chart": chart}
