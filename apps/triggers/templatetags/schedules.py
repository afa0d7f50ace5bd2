"""Schedules on other apps' pages (operators see the pause/resume button):

- `{% schedule_panel workflow %}`: a workflow page's next scheduled runs and the toggle.
- `{% schedule_starts page.object_list as starts %}` then `{% schedule_cell starts wf %}`: a list
  row's next start and toggle, with one query for the page.
"""

from django import template

from apps.accounts.access import has_role
from apps.accounts.models import Role
from apps.triggers import services

register = template.Library()


@register.inclusion_tag("triggers/_schedule_panel.html", takes_context=True)
def schedule_panel(context, workflow):
    request = context["request"]
    try:
        upcoming, problem = services.next_run_times(workflow), ""
    except services.TriggerError as exc:
        upcoming, problem = [], str(exc)
    return {"workflow": workflow, "upcoming": upcoming, "schedule_problem": problem,
            "status": services.schedule_status(workflow), "here": request.get_full_path(),
            "can_operate": has_role(request.user, workflow.team, Role.OPERATOR), "csrf_token": context.get("csrf_token")}


@register.simple_tag
def schedule_starts(workflows) -> dict:
    return services.next_starts([workflow.pk for workflow in workflows])


@register.inclusion_tag("triggers/_schedule_cell.html", takes_context=True)
def schedule_cell(context, starts: dict, workflow):
    request = context["request"]
    status = starts.get(workflow.pk)
    return {"workflow": workflow, "status": status, "here": request.get_full_path(),
            "can_operate": bool(status) and has_role(request.user, workflow.team, Role.OPERATOR),
            "csrf_token": context.get("csrf_token")}
